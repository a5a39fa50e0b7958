import { fork } from 'node:child_process';
import { probeBackends } from '../../src/kernels/runtime.js';
import { gpt2Config } from '../../src/policy/index.js';
import type { ModelCase, ModelRow } from './model-measure.js';
import type { Suite, SuiteResult } from './types.js';

/**
 * Whole-model figures: training step (with and without gradient checkpointing), forward pass and
 * KV-cache generation tokens/s, and memory, for a tiny, a small and a GPT-2-124M-shaped model.
 * Each config runs in a child process of its own (model-child.ts): a fresh wasm heap, so the
 * peak RSS and heap size are that config's, and a config that exhausts the heap (the wasm
 * runtime aborts) cannot take the others down with it.
 */

/**
 * Why GPT-2-124M gets no full training step on wasm. The wasm32 heap ends at 4 GiB. Measured
 * with tf.profile on GPT-2-shaped proxies of 1 and 2 layers (vocab 50257, d 768, 4×128 tokens):
 * fwd+bwd peaks at 2.73 GB + 0.52 GB per layer (≈ 8.5 GB at 12 layers); with checkpointing
 * 2.46 GB + 0.15 GB per layer (≈ 4.1 GB), of which 1.5 GB at 12 layers is params + AdamW
 * moments; clip + AdamW.step peak at 3.37 GB + 0.54 GB per layer (≈ 9.3 GB): AdamW.step keeps
 * ~13 temporaries per parameter alive in one tidy, and clipGradNorm copies every grad.
 */
const GPT2_TRAIN_SKIP =
  'device-side clip + AdamW skipped: the moments (1 GB) on top of a plain forward + backward ' +
  '(wasm heap high-water 2.6 GB) leave too little of the 4 GiB wasm32 heap. Measured: forward + ' +
  'backward alone, plain and checkpointed, and the full step as the trainers take it with the ' +
  'AdamW moments on the host (optim.offload)';

/** The configs for a backend; `quick` drops GPT-2 and repetitions. */
export function modelCases(backend: string, quick: boolean): ModelCase[] {
  const gen = (reps: number) => ({ batches: [1, 8], prompt: 32, newTokens: 64, reps });
  const both = ['plain', 'checkpoint'] as const;
  const tiny: ModelCase = {
    name: 'tiny',
    config: gpt2Config({ vocabSize: 256, layers: 4, heads: 4, hidden: 128, maxPositions: 128 }),
    batch: 8,
    seq: 64,
    forwardReps: quick ? 3 : 9,
    generate: gen(quick ? 1 : 3),
    train: {
      variants: both,
      steps: quick ? 2 : 5,
      optimizer: true,
      trainer: { steps: quick ? 2 : 7, offload: false },
    },
    memory: true,
  };
  if (backend !== 'wasm') {
    // webgpu here is Mesa lavapipe (a CPU rasteriser): tiny only, few repetitions, no profile
    // (tf.profile reads every kernel's output back without GPU timestamp queries).
    return [
      {
        ...tiny,
        forwardReps: 2,
        generate: gen(1),
        train: { variants: both, steps: 1, optimizer: true },
        memory: false,
      },
    ];
  }
  const small: ModelCase = {
    name: 'small',
    config: gpt2Config({ vocabSize: 512, layers: 6, heads: 6, hidden: 384, maxPositions: 256 }),
    batch: 8,
    seq: 128,
    forwardReps: quick ? 1 : 3,
    generate: gen(quick ? 1 : 4),
    train: {
      variants: both,
      steps: quick ? 1 : 2,
      optimizer: true,
      trainer: { steps: quick ? 2 : 5, offload: false },
    },
    memory: true,
  };
  const gpt2: ModelCase = {
    name: 'gpt2-124M',
    config: gpt2Config({
      vocabSize: 50257,
      layers: 12,
      heads: 12,
      hidden: 768,
      maxPositions: 1024,
    }),
    batch: 4,
    seq: 128,
    forwardReps: 1,
    generate: gen(2),
    train: {
      variants: ['plain', 'checkpoint'],
      steps: 1,
      optimizer: false,
      skipReason: GPT2_TRAIN_SKIP,
      trainer: { steps: 3, offload: true },
    },
    memory: true,
  };
  return quick ? [tiny, small] : [tiny, small, gpt2];
}

/**
 * The bf16 suite's configs (bench/suites/bf16.ts): the small and GPT-2-124M shapes, the trainer
 * step, forward and KV-cache generation only (no memory profile, no plain/checkpoint variants), the
 * same at fp32 and bf16 precision; 5 timed calls of each after a warm-up (--quick: fewer), as
 * compare.py's PyTorch side (the torch suite runs these too). generateOnly: generation alone (no
 * forward, no training: the bf16-generate suite).
 */
export function bf16Cases(quick: boolean, generateOnly = false): ModelCase[] {
  const light = (c: ModelCase, steps: number, offload: boolean): ModelCase => ({
    ...c,
    forwardReps: generateOnly ? 0 : quick ? 1 : 5,
    generate: { batches: [1, 8], prompt: 32, newTokens: 64, reps: quick ? 1 : 5 },
    train: {
      variants: [],
      steps: 0,
      optimizer: false,
      ...(generateOnly ? {} : { trainer: { steps, offload } }),
    },
    memory: false,
  });
  const [, small, gpt2] = modelCases('wasm', false);
  return [light(small, quick ? 2 : 5, false), ...(quick ? [] : [light(gpt2, 5, true)])];
}

/** Longest a config's child may run before it is stopped (and reported). */
const CHILD_LIMIT_MS: Record<string, number> = { tiny: 120_000, small: 240_000 };
const DEFAULT_LIMIT_MS = 360_000;

/** Messages from model-child.ts. */
export type ChildMessage =
  | { type: 'row'; row: ModelRow }
  | { type: 'note'; text: string }
  | { type: 'log'; line: string }
  | { type: 'phase'; phase: string }
  | { type: 'error'; message: string }
  | { type: 'done' };

export function runChild(
  backend: string,
  name: string,
  quick: boolean,
  log: (line: string) => void,
  /** The bf16 suite's cases (bf16Cases) at this precision, instead of modelCases. */
  bf16?: { readonly precision: 'fp32' | 'bf16'; readonly generateOnly?: boolean },
): Promise<{ rows: ModelRow[]; notes: string[] }> {
  const rows: ModelRow[] = [];
  const notes: string[] = [];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = fork(
      new URL('./model-child.ts', import.meta.url),
      [
        backend,
        name,
        quick ? 'quick' : 'full',
        ...(bf16 ? ['bf16-suite', bf16.precision] : []),
        ...(bf16?.generateOnly ? ['generate-only'] : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
    );
    // Progress comes over IPC. The webgpu (Dawn) binding can print one validation error
    // hundreds of times: collect what the child prints and show its distinct lines once.
    const printed: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream
        ?.setEncoding('utf8')
        .on('data', (chunk: string) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop() ?? '';
          printed.push(...lines);
        })
        .on('end', () => {
          if (partial) printed.push(partial);
        });
    }
    let phase = 'start';
    let done = false;
    let error: string | undefined;
    const limit = CHILD_LIMIT_MS[name] ?? DEFAULT_LIMIT_MS;
    const timer = setTimeout(() => {
      error = `stopped after ${limit / 1000} s (in ${phase})`;
      child.kill('SIGKILL');
    }, limit);
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'row') rows.push(m.row);
      else if (m.type === 'note') notes.push(`${backend} ${name}: ${m.text}`);
      else if (m.type === 'log') log(m.line);
      else if (m.type === 'phase') phase = m.phase;
      else if (m.type === 'error') error = `${m.message} (in ${phase})`;
      else if (m.type === 'done') done = true;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const distinct = [...new Set(printed.map((l) => l.trimEnd()).filter((l) => l))];
      if (distinct.length) {
        log(`${backend} ${name} printed ${printed.length} lines, ${distinct.length} distinct:`);
        for (const l of distinct.slice(0, 12)) log(`  ${l}`);
        if (distinct.length > 12) log(`  … ${distinct.length - 12} more`);
      }
      const secs = ((performance.now() - started) / 1000).toFixed(0);
      if (!done || error) {
        const why = error ?? `the process ended (${signal ?? `exit code ${code}`}) in ${phase}`;
        const text = `ERROR: ${backend} ${name}: ${why}; figures after that are missing`;
        notes.push(text);
        log(text);
      }
      log(`${backend.padEnd(7)} ${name.padEnd(10)} finished in ${secs} s`);
      resolve({ rows, notes });
    });
  });
}

export const modelSuite: Suite = {
  name: 'model',
  description:
    'whole-model tokens/s (training step with/without gradient checkpointing, forward, ' +
    'KV-cache generation) and memory for tiny, small and GPT-2-124M-shaped configs',
  async run({ quick, log }) {
    const backends = ['wasm'];
    if (!quick) {
      const probes = await probeBackends();
      if (probes.find((p) => p.backend === 'webgpu')?.available) backends.push('webgpu');
    }
    const rows: ModelRow[] = [];
    const notes: string[] = [];
    for (const backend of backends) {
      for (const c of modelCases(backend, quick)) {
        const r = await runChild(backend, c.name, quick, log);
        rows.push(...r.rows);
        notes.push(...r.notes);
      }
    }
    const result: SuiteResult & { notes: string[] } = {
      rows,
      markdown: modelTable(rows, notes),
      notes,
    };
    return result;
  },
};

const MB = (b: number) => `${(b / 1e6).toFixed(0)} MB`;

/** Figures in table order, with how each cell is written. */
const FIGURES: ReadonlyArray<{ figure: string; label: string; cell: (r: ModelRow) => string }> = [
  { figure: 'parameters', label: 'parameters', cell: (r) => `${(r.value / 1e6).toFixed(2)} M` },
  ...[
    'train',
    'train (checkpoint)',
    'train fwd+bwd only',
    'train fwd+bwd only (checkpoint)',
    'train (trainer step)',
    'train (trainer step, AdamW offload)',
  ].map((figure) => ({
    figure,
    label: `${figure} tokens/s`,
    cell: (r: ModelRow) => r.value.toFixed(r.value < 100 ? 1 : 0),
  })),
  ...['train', 'train (checkpoint)'].map((figure) => ({
    figure,
    label: `${figure}: step ms (fwd+bwd / clip / AdamW)`,
    cell: (r: ModelRow) => {
      const f = (k: string) => (r[k] as number).toFixed(0);
      return `${f('ms')} (${f('fwdBwdMs')} / ${f('clipMs')} / ${f('optMs')})`;
    },
  })),
  {
    figure: 'train fwd+bwd only (checkpoint)',
    label: 'train fwd+bwd only (checkpoint): step ms',
    cell: (r) => (r['ms'] as number).toFixed(0),
  },
  {
    figure: 'forward',
    label: 'forward tokens/s',
    cell: (r) => r.value.toFixed(r.value < 100 ? 1 : 0),
  },
  ...[1, 8].flatMap((b) => [
    {
      figure: `generate b${b}`,
      label: `generate b${b} tokens/s (prompt 32, 64 new)`,
      cell: (r: ModelRow) => r.value.toFixed(1),
    },
    {
      figure: `prefill b${b}`,
      label: `prefill b${b} ms`,
      cell: (r: ModelRow) => r.value.toFixed(r.value < 100 ? 1 : 0),
    },
  ]),
  { figure: 'fwd+bwd peak', label: 'fwd+bwd peak (tfjs bytes)', cell: (r) => MB(r.value) },
  {
    figure: 'fwd+bwd peak (checkpoint)',
    label: 'fwd+bwd peak, checkpoint (tfjs bytes)',
    cell: (r) => MB(r.value),
  },
  {
    figure: 'checkpoint saves',
    label: 'checkpointing saves',
    cell: (r) => `${MB(r.value)} (${(r['pctOfPeak'] as number).toFixed(1)} %)`,
  },
  {
    figure: 'train step peak',
    label: 'train step peak (tfjs bytes)',
    cell: (r) => MB(r.value),
  },
  { figure: 'wasm heap', label: 'wasm heap high-water', cell: (r) => MB(r.value) },
  { figure: 'peak RSS', label: 'peak RSS (process)', cell: (r) => MB(r.value) },
  { figure: 'leaked tensors', label: '**leaked tensors**', cell: (r) => `**${r.value}**` },
];

/** One table per backend: a row per figure, a column per config; then the notes. */
export function modelTable(rows: readonly ModelRow[], notes: readonly string[] = []): string {
  const out: string[] = [];
  for (const backend of [...new Set(rows.map((r) => r.backend))]) {
    const mine = rows.filter((r) => r.backend === backend);
    const configs = [...new Set(mine.map((r) => r.config))];
    out.push(`**${backend}**`, '');
    out.push(`| figure | ${configs.join(' | ')} |`, `|---|${configs.map(() => '---:').join('|')}|`);
    for (const f of FIGURES) {
      const cells = configs.map((c) => {
        const r = mine.find((x) => x.config === c && x.figure === f.figure);
        return r ? f.cell(r) : '—';
      });
      if (cells.some((x) => x !== '—')) out.push(`| ${f.label} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  out.push(
    'Training: random tokens, lmLoss → tf.variableGrads → clipGradNorm(1.0) → AdamW.step; median ' +
      'step after one warm-up step per variant, variants interleaved. tfjs bytes: tf.profile ' +
      'peakBytes over the warm-up step (every live tensor, params and AdamW moments included). ' +
      'Peak RSS: process.resourceUsage().maxRSS of the config’s own child process.',
  );
  out.push('', ...notes.map((n) => `- ${n}`));
  if (!notes.some((n) => n.includes('leaked'))) {
    out.push(
      '- No tensors leaked: every config that finished returned tf.memory().numTensors to its start.',
    );
  }
  return out.join('\n');
}
