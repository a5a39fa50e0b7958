import { availableParallelism } from 'node:os';
import { timeMatMul } from '../../src/kernels/measure.js';
import { nativeKernels } from '../../src/kernels/native.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import { SHAPES } from './matmul.js';
import { runChild } from './model.js';
import { runCompare, type TorchRow, torchAvailable } from './torch-child.js';
import type { Suite } from './types.js';

/** The matmul shapes compare.py times (by name, from the matmul suite). */
const TORCH_MATMULS = new Set([
  'linear X·W',
  'linear grad dX = dY·Wᵀ',
  'linear grad dW = Xᵀ·dY',
  'attention Q·Kᵀ (and dP = dO·Vᵀ)',
  'attention P·V (and dQ = dS·K)',
]);
const MATMULS = SHAPES.filter((s) => TORCH_MATMULS.has(s.name));

/** One row per key, its value the median of the rows with that key (in first-seen order). */
function medianOver<T extends { value: number }>(rows: readonly T[], key: (t: T) => string): T[] {
  const groups = new Map<string, T[]>();
  for (const r of rows) {
    const k = key(r);
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const v = g.map((r) => r.value).sort((a, b) => a - b);
    const mid = v.length >> 1;
    const value = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
    return { ...g[0], value, rounds: v };
  });
}

/**
 * Side by side with PyTorch (CPU, Debian's python3-torch): the same matmuls and the same
 * GPT-2-family configs (forward, training step, KV-cache generation), Troupe on wasm (with the
 * native BLAS when built) measured in the same run, PyTorch at 1 thread and at every core.
 */
export const torchSuite: Suite = {
  name: 'torch',
  description:
    'Troupe vs PyTorch (CPU) on the same matmuls and GPT-2-family workloads, measured in one run',
  async run({ quick, log }) {
    const avail = torchAvailable();
    if (!avail.ok) {
      log(`skipped: ${avail.reason}`);
      return { rows: [], markdown: `Skipped: ${avail.reason}.` };
    }
    const configs = quick ? ['tiny'] : ['tiny', 'small', 'gpt2-124M'];
    const torch: { torch: string; cores: number; rows: TorchRow[] } = {
      torch: '',
      cores: 0,
      rows: [],
    };
    const cores = availableParallelism();
    const runTorch = (config: string) => {
      for (const threads of [...new Set([1, cores])]) {
        const one = runCompare(config, threads, quick, log);
        torch.torch = one.torch;
        torch.cores = one.cores;
        torch.rows.push(
          ...one.rows.filter(
            (x) => (config !== 'matmul' && threads === 1) || x.figure !== 'peak RSS',
          ),
        );
      }
    };
    type Mine = { figure: string; config: string; value: number; unit: string; blas: number };
    const troupe: Mine[] = [];
    const FIGURES: Record<string, string> = {
      forward: 'forward',
      'train (trainer step)': 'train',
      'train (trainer step, AdamW offload)': 'train',
      'generate b1': 'generate b1',
      'generate b8': 'generate b8',
      'peak RSS': 'peak RSS',
    };
    const native = nativeKernels().available;
    const saved = process.env.TROUPE_BLAS_THREADS;
    // Rounds: the machine is shared, and a single figure moved by ±20 % (PyTorch's small-model
    // decoding read 195 and 362 tokens/s in two runs), so every figure is the median of its
    // rounds, each round config by config, PyTorch then Troupe, so that both sides see the machine
    // in the same state. Troupe runs with one BLAS thread per call, then with one per core (each
    // config's child reads TROUPE_BLAS_THREADS when it loads the addon): both cores for one
    // learner, as a run gets them.
    const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 2));
    try {
      for (let round = 0; round < rounds; round++) {
        log(`round ${round + 1} of ${rounds}`);
        runTorch('matmul');
        await startRuntime({ backend: 'wasm' });
        for (const m of MATMULS) {
          await timeMatMul(m.shape, { minMs: 200 });
          const t = await timeMatMul(m.shape, { minMs: quick ? 200 : 500, minCalls: 3 });
          troupe.push({
            figure: `matmul ${m.name}`,
            config: 'gpt2-layer',
            value: t.gflops,
            unit: 'GFLOP/s',
            blas: 1,
          });
        }
        for (const name of configs) {
          runTorch(name);
          for (const blas of native && !quick ? [1, torch.cores] : [1]) {
            process.env.TROUPE_BLAS_THREADS = String(blas);
            const { rows } = await runChild('wasm', name, quick, log);
            for (const row of rows) {
              const figure = FIGURES[row.figure];
              if (figure)
                troupe.push({ figure, config: name, value: row.value, unit: row.unit, blas });
            }
          }
        }
      }
    } finally {
      if (saved === undefined) delete process.env.TROUPE_BLAS_THREADS;
      else process.env.TROUPE_BLAS_THREADS = saved;
    }
    const mine = medianOver(troupe, (t) => `${t.figure}|${t.config}|${t.blas}`);
    troupe.length = 0;
    troupe.push(...mine);
    const theirs = medianOver(torch.rows, (t) => `${t.figure}|${t.config}|${t.threads}`);
    torch.rows = theirs;
    const blasCounts = [...new Set(troupe.map((t) => t.blas))];
    const threads = [...new Set(torch.rows.map((r) => r.threads))]
      .filter((n) => n > 0)
      .sort((a, b) => a - b);
    const kernel = native ? 'wasm + native kernels' : 'wasm';
    const torchAt = (t: Mine, n: number) =>
      torch.rows.find(
        (r) =>
          r.figure === t.figure &&
          r.config === t.config &&
          (r.threads === n || (r.figure === 'peak RSS' && r.threads === 0)),
      )?.value;
    const ones = troupe.filter((t) => t.blas === 1);
    const rows = ones.map((t) => {
      const more = troupe.find(
        (x) => x.blas > 1 && x.figure === t.figure && x.config === t.config,
      )?.value;
      const ref = Object.fromEntries(threads.map((n) => [n, torchAt(t, n)]));
      return { ...t, troupe: t.value, troupeAllCores: more, torch: ref };
    });
    const fmt = (x: number | undefined, unit: string) =>
      x === undefined
        ? '—'
        : unit === 'bytes'
          ? `${(x / 2 ** 20).toFixed(0)} MB`
          : x >= 100
            ? x.toFixed(0)
            : x.toFixed(1);
    const ratio = (a: number | undefined, b: number | undefined) =>
      a && b ? (a / b).toFixed(2) : '—';
    // the best of each side (for peak RSS, the figure itself: lower is better, one value)
    const best = (xs: (number | undefined)[], unit: string) => {
      const v = xs.filter((x): x is number => x !== undefined);
      return v.length === 0 ? undefined : unit === 'bytes' ? v[0] : Math.max(...v);
    };
    const many = blasCounts.length > 1;
    const markdown = [
      `PyTorch ${torch.torch} (CPU, ${torch.cores} cores) vs Troupe on ${kernel}.`,
      '',
      'Troupe / PyTorch > 1 is Troupe faster (for peak RSS: Troupe uses more). "train" is one full',
      "optimizer step (forward, backward, clip, AdamW); for Troupe the trainers' optimizerStep,",
      'at GPT-2 size with the AdamW moments on the host (the wasm32 heap is 4 GiB). Each figure is',
      `the median of ${rounds} round${rounds > 1 ? 's' : ''}, each round PyTorch then Troupe config by config, each`,
      'side the median of its repetitions after a warm-up. "best / best" compares the faster',
      'thread count of each side.',
      '',
      `| figure | config | Troupe 1 thread |${many ? ` Troupe ${torch.cores} BLAS threads |` : ''} ${threads.map((n) => `PyTorch ${n} thread${n > 1 ? 's' : ''}`).join(' | ')} | Troupe / PyTorch, 1 thread each |${many ? ' best / best |' : ''}`,
      `|---|---|---:|${many ? '---:|' : ''}${threads.map(() => '---:').join('|')}|---:|${many ? '---:|' : ''}`,
      ...rows.map((r) => {
        const torchBest = best(
          threads.map((n) => r.torch[n]),
          r.unit,
        );
        const mineBest = best([r.troupe, r.troupeAllCores], r.unit);
        return `| ${r.figure}${r.unit === 'bytes' ? '' : ` (${r.unit})`} | ${r.config} | ${fmt(r.troupe, r.unit)} |${many ? ` ${fmt(r.troupeAllCores, r.unit)} |` : ''} ${threads.map((n) => fmt(r.torch[n], r.unit)).join(' | ')} | ${ratio(r.troupe, r.torch[threads[0]])} |${many ? ` ${ratio(mineBest, torchBest)} |` : ''}`;
      }),
    ].join('\n');
    return { rows, markdown };
  },
};
