import { availableParallelism } from 'node:os';
import type { MatMulShape } from '../../src/kernels/measure.js';
import { type NativeAddon, nativeKernels } from '../../src/kernels/native.js';
import { describe, type Row, SHAPES, SQUARE, timeBf16 } from './matmul.js';
import { bf16Cases, runChild } from './model.js';
import { blasCoreType, runCompare, torchAvailable } from './torch-child.js';
import type { Suite } from './types.js';

/*
 * bf16 mixed precision against PyTorch 2.13 in one run: the bf16 kernel's GFLOP/s beside
 * oneDNN's (also in the matmul suite's table).
 */

/** The bf16 kernel's shapes: the GPT-2 layer's linear products and a 2048³ square. */
// (a function: matmul.ts, which this file's SHAPES come from, imports this file too)
const bf16Shapes = (): ReadonlyArray<{ name: string; shape: MatMulShape }> => [
  ...SHAPES.filter((x) => x.name.startsWith('linear')),
  { name: 'square 2048³', shape: SQUARE },
];

/**
 * bf16 products with fp32 sums (native/bf16.c: AMX, AVX512-BF16 or fp32; packing of the fp32
 * operands included) side by side with PyTorch's bf16 matmul on bf16 tensors (oneDNN), at 1 thread
 * and at every core: rounds of PyTorch then Troupe at each thread count, so both sides see the
 * machine in the same state; each figure the median over the rounds of each round's best.
 */
export function bf16VsTorch(
  addon: NativeAddon,
  quick: boolean,
  log: (line: string) => void,
): { rows: Row[]; markdown: string } {
  const path = addon.bf16Path();
  const torch = torchAvailable();
  if (!torch.ok) log(`bf16 vs PyTorch: PyTorch skipped: ${torch.reason}`);
  const counts = [...new Set([1, availableParallelism()])];
  const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 3));
  const mine = new Map<string, number[]>();
  const theirs = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, v: number) =>
    m.set(k, [...(m.get(k) ?? []), v]);
  let version = '';
  const saved = addon.threads();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const threads of counts) {
        if (torch.ok) {
          const r = runCompare('matmul-bf16', threads, quick, log);
          version = r.torch;
          for (const row of r.rows)
            if (row.unit === 'GFLOP/s')
              add(theirs, `${row.figure.slice(12)}|${threads}`, row.value);
        }
        addon.setThreads(threads);
        for (const { name, shape } of bf16Shapes()) {
          const t = timeBf16(addon, shape, quick ? 100 : 300);
          add(mine, `${name}|${threads}`, t.gflops);
          log(
            `bf16 ${path} ${threads} thread(s) ${t.gflops.toFixed(0).padStart(6)} GFLOP/s  ${name}`,
          );
        }
      }
    }
  } finally {
    addon.setThreads(saved);
  }
  const rows: Row[] = [];
  const med = (xs: number[] | undefined) => {
    if (!xs?.length) return undefined;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const f = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(0));
  const lines = [
    `bf16 products, fp32 sums: Troupe's kernel (${path}; fp32 operands rounded while packed, packing timed) vs PyTorch ${version || '(not run)'} on bf16 tensors (oneDNN); median of ${rounds} round${rounds > 1 ? 's' : ''}, GFLOP/s.`,
    '',
    `| shape | ${counts.map((n) => `Troupe ${n}t | PyTorch ${n}t | Troupe / PyTorch`).join(' | ')} |`,
    `|---|${counts.map(() => '---:|---:|---:').join('|')}|`,
  ];
  for (const { name, shape } of bf16Shapes()) {
    const cells: string[] = [];
    for (const n of counts) {
      const a = med(mine.get(`${name}|${n}`));
      const b = med(theirs.get(`${name}|${n}`));
      const shapeName = `${name} ${describe(shape)}`;
      if (a !== undefined)
        rows.push({
          backend: 'bf16',
          kernel: `bf16 ${path} ${n}t`,
          shape: shapeName,
          gflops: a,
          msPerCall: 0,
        });
      if (b !== undefined)
        rows.push({
          backend: 'torch',
          kernel: `PyTorch bf16 ${n}t`,
          shape: shapeName,
          gflops: b,
          msPerCall: 0,
        });
      cells.push(f(a), f(b), a && b ? `${((100 * a) / b).toFixed(0)} %` : '—');
    }
    lines.push(`| ${name} ${describe(shape)} | ${cells.join(' | ')} |`);
  }
  return { rows, markdown: lines.join('\n') };
}

/** A figure's rounds, per side: `${figure}|${config}|${side}|${threads}`. */
type Rounds = Map<string, number[]>;

const median = (xs: readonly number[] | undefined) => {
  if (!xs?.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const SIDES = ['Troupe fp32', 'Troupe bf16', 'PyTorch fp32', 'PyTorch bf16'] as const;
const FIGURES = ['train', 'forward', 'generate b1', 'generate b8'] as const;

/**
 * The model configs of the bf16 suite's whole-model part: bf16Cases, or those named in
 * TROUPE_BF16_CONFIGS (comma-separated, e.g. `small`); a name that is none of them is refused.
 */
function bf16Configs(quick: boolean) {
  const all = bf16Cases(quick);
  const want = process.env.TROUPE_BF16_CONFIGS?.split(',').filter(Boolean);
  if (!want?.length) return all;
  const picked = all.filter((c) => want.includes(c.name));
  if (picked.length !== want.length) {
    throw new Error(
      `TROUPE_BF16_CONFIGS: ${want.filter((w) => !picked.some((c) => c.name === w)).join(', ')} is not one of ${all.map((c) => c.name).join(', ')}`,
    );
  }
  return picked;
}

/**
 * Whole-model tokens/s, fp32 against bf16, Troupe against PyTorch 2.13, in rounds: per config,
 * PyTorch fp32 and bf16 (autocast; bf16 weights for generation), then Troupe fp32 and bf16 (wasm
 * + native kernels, `runtime.precision`), each in a process of its own, at the same thread count
 * (TROUPE_BF16_THREADS, default every core: OMP/OpenBLAS threads for PyTorch, BLAS threads per
 * call for Troupe), the configs TROUPE_BF16_CONFIGS names (default all). Train is the trainers' optimizerStep (GPT-2: AdamW moments on the host).
 */
export async function bf16Models(quick: boolean, log: (line: string) => void) {
  const torch = torchAvailable();
  if (!torch.ok) log(`PyTorch side skipped: ${torch.reason}`);
  const counts = (process.env.TROUPE_BF16_THREADS ?? String(availableParallelism()))
    .split(',')
    .map(Number);
  const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 2));
  const cases = bf16Configs(quick);
  const got: Rounds = new Map();
  const add = (k: string, v: number) => got.set(k, [...(got.get(k) ?? []), v]);
  const FIG: Record<string, string> = {
    forward: 'forward',
    'train (trainer step)': 'train',
    'train (trainer step, AdamW offload)': 'train',
    'generate b1': 'generate b1',
    'generate b8': 'generate b8',
  };
  let version = '';
  const saved = process.env.TROUPE_BLAS_THREADS;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        for (const threads of counts) {
          log(`round ${round + 1}/${rounds}: ${c.name}, ${threads} thread(s)`);
          for (const precision of ['fp32', 'bf16'] as const) {
            if (!torch.ok) continue;
            const r = runCompare(c.name, threads, quick, log, ['--precision', precision]);
            version = r.torch;
            for (const row of r.rows)
              if (row.unit === 'tokens/s')
                add(`${row.figure}|${c.name}|PyTorch ${precision}|${threads}`, row.value);
          }
          process.env.TROUPE_BLAS_THREADS = String(threads);
          for (const precision of ['fp32', 'bf16'] as const) {
            const { rows } = await runChild('wasm', c.name, quick, log, { precision });
            for (const row of rows) {
              const figure = FIG[row.figure];
              if (figure) add(`${figure}|${c.name}|Troupe ${precision}|${threads}`, row.value);
            }
          }
        }
      }
    }
  } finally {
    if (saved === undefined) delete process.env.TROUPE_BLAS_THREADS;
    else process.env.TROUPE_BLAS_THREADS = saved;
  }
  const rows: {
    figure: string;
    config: string;
    side: string;
    threads: number;
    value: number;
    rounds: number[];
  }[] = [];
  for (const [k, v] of got) {
    const [figure, config, side, threads] = k.split('|');
    rows.push({ figure, config, side, threads: Number(threads), value: median(v)!, rounds: v });
  }
  const at = (f: string, c: string, side: string, n: number) =>
    rows.find((r) => r.figure === f && r.config === c && r.side === side && r.threads === n)?.value;
  const fmt = (x: number | undefined) =>
    x === undefined ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1);
  const ratio = (a: number | undefined, b: number | undefined) =>
    a && b ? `${(a / b).toFixed(2)}×` : '—';
  const lines = [
    `Tokens/s, Troupe (wasm + native kernels) vs PyTorch ${version || '(not run)'}, median of ${rounds} round${rounds > 1 ? 's' : ''}; PyTorch bf16 = autocast (train, forward), bf16 weights (generation).`,
    '',
    `| figure | config | threads | ${SIDES.join(' | ')} | Troupe bf16 / fp32 | Troupe bf16 / PyTorch bf16 |`,
    `|---|---|---:|${SIDES.map(() => '---:').join('|')}|---:|---:|`,
  ];
  for (const c of cases)
    for (const n of counts)
      for (const f of FIGURES) {
        const v = SIDES.map((side) => at(f, c.name, side, n));
        if (v.every((x) => x === undefined)) continue;
        lines.push(
          `| ${f} | ${c.name} | ${n} | ${v.map(fmt).join(' | ')} | ${ratio(v[1], v[0])} | ${ratio(v[1], v[3])} |`,
        );
      }
  return { rows, markdown: lines.join('\n') };
}

/**
 * GPT-2-124M generation with bf16 weights alone, Troupe against PyTorch 2.13 in one run (#17
 * item 4): per round (TROUPE_TORCH_ROUNDS, default 2) and thread count (TROUPE_BF16_THREADS,
 * default 1 and every core), PyTorch (compare.py --only generate: bf16 weights, SDPA) then
 * Troupe (wasm + native kernels, precision bf16, a generator holding bf16 weights), each in a
 * process of its own at the same thread count; both greedy, prompt 32, 64 new tokens, batch 1
 * and 8, the median of 5 timed runs after a warm-up (Troupe's also computes each token's
 * log-probability, which PyTorch's argmax loop does not). A figure is the median over the rounds.
 */
export async function bf16Generate(quick: boolean, log: (line: string) => void) {
  const torch = torchAvailable();
  if (!torch.ok) log(`PyTorch side skipped: ${torch.reason}`);
  const counts = (
    process.env.TROUPE_BF16_THREADS ?? [...new Set([1, availableParallelism()])].join(',')
  )
    .split(',')
    .map(Number);
  const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 2));
  const cases = bf16Cases(quick, true).filter((c) => quick || c.name === 'gpt2-124M');
  const got: Rounds = new Map();
  const add = (k: string, v: number) => got.set(k, [...(got.get(k) ?? []), v]);
  let version = '';
  const saved = process.env.TROUPE_BLAS_THREADS;
  try {
    for (let round = 0; round < rounds; round++)
      for (const c of cases)
        for (const threads of counts) {
          log(`round ${round + 1}/${rounds}: ${c.name}, ${threads} thread(s)`);
          if (torch.ok) {
            const r = runCompare(c.name, threads, quick, log, [
              '--precision',
              'bf16',
              '--only',
              'generate',
            ]);
            version = r.torch;
            for (const row of r.rows)
              if (row.unit === 'tokens/s')
                add(`${row.figure}|${c.name}|PyTorch|${threads}`, row.value);
          }
          process.env.TROUPE_BLAS_THREADS = String(threads);
          const { rows } = await runChild('wasm', c.name, quick, log, {
            precision: 'bf16',
            generateOnly: true,
          });
          for (const row of rows)
            if (row.unit === 'tokens/s')
              add(`${row.figure}|${c.name}|Troupe|${threads}`, row.value);
        }
  } finally {
    if (saved === undefined) delete process.env.TROUPE_BLAS_THREADS;
    else process.env.TROUPE_BLAS_THREADS = saved;
  }
  const rows = [...got].map(([k, v]) => {
    const [figure, config, side, threads] = k.split('|');
    return { figure, config, side, threads: Number(threads), value: median(v)!, rounds: v };
  });
  const at = (f: string, c: string, side: string, n: number) =>
    rows.find((r) => r.figure === f && r.config === c && r.side === side && r.threads === n);
  const fmt = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(1));
  const lines = [
    `Generation tokens/s with bf16 weights (greedy, prompt 32, 64 new), Troupe (wasm + native kernels, precision bf16) vs PyTorch ${version || '(not run)'} (bf16 weights, SDPA), OPENBLAS_CORETYPE ${blasCoreType() ?? '(OpenBLAS default)'} both sides, median of ${rounds} round${rounds > 1 ? 's' : ''} (each the median of ${quick ? 1 : 5} runs); the rounds in brackets.`,
    '',
    '| figure | config | threads | Troupe | PyTorch | Troupe / PyTorch |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const c of cases)
    for (const n of counts)
      for (const f of ['generate b1', 'generate b8']) {
        const a = at(f, c.name, 'Troupe', n);
        const b = at(f, c.name, 'PyTorch', n);
        if (!a && !b) continue;
        const cell = (r: typeof a) =>
          r ? `${fmt(r.value)} (${r.rounds.map((x) => x.toFixed(0)).join(', ')})` : '—';
        const ratio = a && b ? `${(a.value / b.value).toFixed(2)}×` : '—';
        lines.push(`| ${f} | ${c.name} | ${n} | ${cell(a)} | ${cell(b)} | ${ratio} |`);
      }
  return { rows, markdown: lines.join('\n') };
}

export const bf16GenerateSuite: Suite = {
  name: 'bf16-generate',
  description:
    'GPT-2-124M generation with bf16 weights, Troupe vs PyTorch 2.13 (batch 1 and 8, 1 thread and every core), one run',
  async run({ quick, log }) {
    const n = nativeKernels();
    if (!n.available) {
      log(`skipped: ${n.reason}`);
      return { rows: [], markdown: `Skipped: ${n.reason}.` };
    }
    // One kernel class for both sides (SkylakeX where the CPU has AVX-512), as the torch suite.
    const core = blasCoreType();
    if (core) process.env.TROUPE_BLAS_CORETYPE = core;
    log(`OpenBLAS core type both sides: ${core ?? "OpenBLAS's own choice"}`);
    return bf16Generate(quick, log);
  },
};

export const bf16Suite: Suite = {
  name: 'bf16',
  description:
    "bf16 mixed precision vs fp32 and PyTorch 2.13 (bf16 matmul GFLOP/s beside oneDNN's; train, forward and generation tokens/s beside autocast), one run",
  async run({ quick, log }) {
    const n = nativeKernels();
    if (!n.available) {
      log(`skipped: ${n.reason}`);
      return { rows: [], markdown: `Skipped: ${n.reason}.` };
    }
    const only = process.env.TROUPE_BF16_PART; // 'matmul' or 'models': one half
    const mm = only === 'models' ? undefined : bf16VsTorch(n.addon, quick, log);
    const models = only === 'matmul' ? undefined : await bf16Models(quick, log);
    return {
      rows: [...(mm?.rows ?? []), ...(models?.rows ?? [])],
      markdown: [mm?.markdown, models?.markdown].filter(Boolean).join('\n\n'),
    };
  },
};
