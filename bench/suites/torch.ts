import { availableParallelism, loadavg } from 'node:os';
import { timeMatMul } from '../../src/kernels/measure.js';
import { nativeKernels } from '../../src/kernels/native.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import { SHAPES } from './matmul.js';
import { bf16Cases, runChild } from './model.js';
import { blasCoreType, runCompare, torchPythons } from './torch-child.js';
import type { Suite } from './types.js';

/*
 * Troupe against PyTorch in one run: every PyTorch this machine has (the reference venv's 2.13,
 * Debian's 1.13), fp32 and (2.x) bf16, beside Troupe fp32 and bf16 on wasm + native kernels, at
 * the same thread counts and with the same OpenBLAS kernel class set explicitly for Troupe and
 * for Debian's PyTorch (which multiplies with that OpenBLAS; the 2.13 wheel brings MKL and oneDNN,
 * which choose their own, and the JSON says what each reported).
 */

/** The matmul shapes compare.py times (by name, from the matmul suite). */
const TORCH_MATMULS = new Set([
  'linear X·W',
  'linear grad dX = dY·Wᵀ',
  'linear grad dW = Xᵀ·dY',
  'attention Q·Kᵀ (and dP = dO·Vᵀ)',
  'attention P·V (and dQ = dS·K)',
]);
const MATMULS = SHAPES.filter((s) => TORCH_MATMULS.has(s.name));

/** Troupe's model-child figures under the names compare.py gives them. */
const FIG: Record<string, string> = {
  forward: 'forward',
  'train (trainer step)': 'train',
  'train (trainer step, AdamW offload)': 'train',
  'generate b1': 'generate b1',
  'generate b8': 'generate b8',
  'peak RSS': 'peak RSS',
};
const FIGURES = ['train', 'forward', 'generate b1', 'generate b8', 'peak RSS'];

/** One figure of one side at one thread count: each round's median and every timed call's rate. */
interface Tally {
  readonly rounds: number[];
  readonly calls: number[];
}
export type TorchSuiteRow = {
  readonly figure: string;
  readonly config: string;
  readonly side: string;
  readonly threads: number;
  readonly unit: string;
  /** Median over the rounds of each round's median call. */
  readonly value: number;
  readonly rounds: readonly number[];
  /** The slowest and the fastest timed call of all rounds (rates: higher is faster). */
  readonly min?: number;
  readonly max?: number;
  readonly calls: number;
};

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Per-call rates from a model-child row: its work is value × median ms. */
export function callRates(row: { value: number; ms?: unknown; runsMs?: unknown }): number[] {
  const ms = row.ms;
  const runs = row.runsMs;
  if (typeof ms !== 'number' || !Array.isArray(runs)) return [];
  const work = row.value * ms;
  return runs.map((r: number) => work / r);
}

/** The rows of a tally map keyed `figure|config|side|threads|unit`. */
export function summarise(got: ReadonlyMap<string, Tally>): TorchSuiteRow[] {
  return [...got].map(([k, t]) => {
    const [figure, config, side, threads, unit] = k.split('|');
    return {
      figure,
      config,
      side,
      threads: Number(threads),
      unit,
      value: median(t.rounds),
      rounds: t.rounds,
      ...(t.calls.length ? { min: Math.min(...t.calls), max: Math.max(...t.calls) } : {}),
      calls: t.calls.length,
    };
  });
}

export const torchSuite: Suite = {
  name: 'torch',
  description:
    'Troupe fp32/bf16 vs PyTorch 2.13 fp32/bf16 and Debian 1.13 (CPU): matmuls, train, forward, generation; same kernels and threads, one run',
  async run({ quick, log }) {
    const pythons = torchPythons();
    if (pythons.length === 0) {
      const why =
        'no Python here imports torch (apt-get install python3-torch, or set TROUPE_TORCH_PYTHON)';
      log(`skipped: ${why}`);
      return { rows: [], markdown: `Skipped: ${why}.` };
    }
    // One kernel class for both sides, set before this process or a child loads OpenBLAS.
    const core = blasCoreType();
    if (core) process.env.TROUPE_BLAS_CORETYPE = core;
    const native = nativeKernels();
    const bf16 = native.available && native.addon.bf16Path() !== 'fp32';
    const troupeKernels = native.available
      ? `wasm + native kernels, ${native.addon.config()}${bf16 ? `, bf16 ${native.addon.bf16Path()}` : ''}`
      : 'wasm (no native kernels)';
    const counts = (process.env.TROUPE_TORCH_THREADS ?? `1,${availableParallelism()}`)
      .split(',')
      .map(Number)
      .filter((n, i, all) => Number.isInteger(n) && n >= 1 && all.indexOf(n) === i);
    const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 2));
    const got = new Map<string, Tally>();
    const add = (k: string, round: number, calls: readonly number[]) => {
      const t = got.get(k) ?? { rounds: [], calls: [] };
      t.rounds.push(round);
      t.calls.push(...calls);
      got.set(k, t);
    };
    const kernels: Record<string, unknown> = { Troupe: troupeKernels };
    const cpuPerWall: Record<string, number[]> = {};
    const load: { round: number; start: number[]; end: number[] }[] = [];
    const torchSide = (version: string, precision: string) => `PyTorch ${version} ${precision}`;
    const pytorch = (config: string, threads: number) => {
      for (const { python, torch } of pythons) {
        const precisions =
          config === 'matmul' || torch.startsWith('1.') ? ['fp32'] : ['fp32', 'bf16'];
        for (const precision of precisions) {
          const side = torchSide(torch, precision);
          const extra = config === 'matmul' ? [] : ['--precision', precision];
          const r = runCompare(config, threads, quick, log, extra, python);
          kernels[side] = r.kernels;
          if (r.cpuPerWall !== undefined) {
            const k = `${side} ${config} ${threads}t`;
            cpuPerWall[k] = [...(cpuPerWall[k] ?? []), r.cpuPerWall];
          }
          for (const row of r.rows) {
            if (config === 'matmul' && row.figure === 'peak RSS') continue;
            const calls = [row.min, row.max].filter((x): x is number => typeof x === 'number');
            add(`${row.figure}|${config}|${side}|${threads}|${row.unit}`, row.value, calls);
          }
        }
      }
    };
    const saved = process.env.TROUPE_BLAS_THREADS;
    try {
      for (let round = 0; round < rounds; round++) {
        const start = loadavg();
        for (const threads of counts) {
          log(`round ${round + 1}/${rounds}: matmul, ${threads} thread(s)`);
          pytorch('matmul', threads);
          await startRuntime({ backend: 'wasm' });
          if (native.available) native.addon.setThreads(threads);
          for (const m of MATMULS) {
            await timeMatMul(m.shape, { minMs: 200 });
            const calls: number[] = [];
            for (let i = 0; i < (quick ? 2 : 5); i++)
              calls.push((await timeMatMul(m.shape, { minMs: 100, minCalls: 3 })).gflops);
            const k = `matmul ${m.name}|matmul|Troupe fp32|${threads}|GFLOP/s`;
            add(k, median(calls), calls);
          }
        }
        for (const c of bf16Cases(quick)) {
          for (const threads of counts) {
            log(`round ${round + 1}/${rounds}: ${c.name}, ${threads} thread(s)`);
            pytorch(c.name, threads);
            process.env.TROUPE_BLAS_THREADS = String(threads);
            for (const precision of bf16 ? (['fp32', 'bf16'] as const) : (['fp32'] as const)) {
              const { rows } = await runChild('wasm', c.name, quick, log, { precision });
              for (const row of rows) {
                const figure = FIG[row.figure];
                if (!figure) continue;
                const k = `${figure}|${c.name}|Troupe ${precision}|${threads}|${row.unit}`;
                add(k, row.value, callRates(row));
              }
            }
          }
        }
        load.push({ round: round + 1, start, end: loadavg() });
      }
    } finally {
      if (saved === undefined) delete process.env.TROUPE_BLAS_THREADS;
      else process.env.TROUPE_BLAS_THREADS = saved;
      if (native.available) native.addon.setThreads(1);
    }
    const rows = summarise(got);
    const sides = [
      'Troupe fp32',
      ...(bf16 ? ['Troupe bf16'] : []),
      ...pythons.flatMap(({ torch }) =>
        torch.startsWith('1.')
          ? [torchSide(torch, 'fp32')]
          : [torchSide(torch, 'fp32'), torchSide(torch, 'bf16')],
      ),
    ];
    const markdown = torchTable(rows, sides, { rounds, core, load, kernels });
    const result = { rows, markdown, kernels, blasCoreType: core ?? null, cpuPerWall, load };
    return result;
  },
};

const fmt = (x: number | undefined, unit: string) =>
  x === undefined
    ? '—'
    : unit === 'bytes'
      ? `${(x / 2 ** 20).toFixed(0)} MB`
      : x >= 100
        ? x.toFixed(0)
        : x.toFixed(1);

/** The table: one row per figure, config and thread count; a column per side; the ratios. */
export function torchTable(
  rows: readonly TorchSuiteRow[],
  sides: readonly string[],
  meta: {
    rounds: number;
    core?: string;
    load: readonly { start: number[]; end: number[] }[];
    kernels: Record<string, unknown>;
  },
): string {
  const at = (figure: string, config: string, side: string, n: number) =>
    rows.find(
      (r) => r.figure === figure && r.config === config && r.side === side && r.threads === n,
    );
  const cell = (r: TorchSuiteRow | undefined) =>
    !r
      ? '—'
      : r.min === undefined
        ? fmt(r.value, r.unit)
        : `${fmt(r.value, r.unit)} (${fmt(r.min, r.unit)}–${fmt(r.max, r.unit)})`;
  const fp32 = sides.filter((s) => s.startsWith('PyTorch') && s.endsWith('fp32'));
  const torchBf16 = sides.find((s) => s.startsWith('PyTorch') && s.endsWith('bf16'));
  const ratio = (a?: TorchSuiteRow, b?: TorchSuiteRow) =>
    a && b ? (a.unit === 'bytes' ? b.value / a.value : a.value / b.value).toFixed(2) : '—';
  const best = (rs: (TorchSuiteRow | undefined)[]) =>
    rs
      .filter((r): r is TorchSuiteRow => !!r)
      .sort((x, y) => (x.unit === 'bytes' ? x.value - y.value : y.value - x.value))[0];
  const ratioHeads = [
    ...fp32.map((s) => `Troupe fp32 / ${s}`),
    ...(sides.includes('Troupe bf16') && torchBf16 ? [`Troupe bf16 / ${torchBf16}`] : []),
    'best Troupe / best PyTorch',
  ];
  // configs in the order measured; within one, the matmuls as measured, then FIGURES' order
  const seen: [string, string][] = [];
  for (const r of rows)
    if (!seen.some(([f, c]) => f === r.figure && c === r.config)) seen.push([r.figure, r.config]);
  const order = (f: string) => FIGURES.indexOf(f);
  const keys = [...new Set(seen.map(([, c]) => c))].flatMap((c) =>
    seen.filter(([, x]) => x === c).sort((a, b) => order(a[0]) - order(b[0])),
  );
  const counts = [...new Set(rows.map((r) => r.threads))].sort((a, b) => a - b);
  const lines = [
    `Median of ${meta.rounds} round${meta.rounds > 1 ? 's' : ''} (each round: every side config by config, PyTorch first), each round the median of ≥ 5 timed calls after a warm-up; in brackets the slowest and fastest call of all rounds. OpenBLAS core type for Troupe and Debian's PyTorch: ${meta.core ?? "OpenBLAS's own choice"}. Ratios > 1: Troupe faster (peak RSS: Troupe smaller). Load average (1 min) at each round's start/end: ${meta.load.map((l) => `${l.start[0].toFixed(1)}/${l.end[0].toFixed(1)}`).join(', ')}.`,
    '',
    `| figure | config | threads | ${sides.join(' | ')} | ${ratioHeads.join(' | ')} |`,
    `|---|---|---:|${sides.map(() => '---:').join('|')}|${ratioHeads.map(() => '---:').join('|')}|`,
  ];
  for (const [figure, config] of keys)
    for (const n of figure === 'peak RSS' ? counts.slice(0, 1) : counts) {
      const v = sides.map((s) => at(figure, config, s, n));
      if (v.every((x) => !x)) continue;
      const troupe = v.slice(0, sides.filter((s) => s.startsWith('Troupe')).length);
      const torch = v.slice(troupe.length);
      const ratios = [
        ...fp32.map((s) => ratio(v[0], at(figure, config, s, n))),
        ...(sides.includes('Troupe bf16') && torchBf16
          ? [ratio(at(figure, config, 'Troupe bf16', n), at(figure, config, torchBf16, n))]
          : []),
        ratio(best(troupe), best(torch)),
      ];
      const unit = v.find((x) => x)!.unit;
      lines.push(
        `| ${figure}${unit === 'bytes' ? '' : ` (${unit})`} | ${config} | ${n} | ${v.map(cell).join(' | ')} | ${ratios.join(' | ')} |`,
      );
    }
  return lines.join('\n');
}
