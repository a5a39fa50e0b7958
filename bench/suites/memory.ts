/**
 * `npm run bench -- --suite memory`: "will it fit", measured. For each model directory (the
 * Qwen2.5-0.5B and Qwen3-0.6B shapes that scripts/memory/make-models.py writes to
 * /tmp/troupe-memory; TROUPE_MEMORY_MODELS=dir1,dir2 to choose others), each phase runs in a
 * child process of its own (memory-child.ts): a forward, a LoRA SFT step, a full fine-tune step
 * (AdamW) and a GRPO iteration on the cpu backend, and a LoRA step on wasm at two batch sizes
 * (the second past the 4 GiB heap: refused with OUT_OF_MEMORY, not aborted). Each row shows the
 * predictor's peak (src/policy/memory.ts) beside the process's peak RSS. `--quick`: the
 * forward and LoRA rows only.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hugePagesEnv, onGlibc } from '../../src/cli/huge-pages.js';
import type { Suite } from './types.js';

const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));
const RESULTS = fileURLToPath(new URL('../results/memory.json', import.meta.url));
const DEFAULT_MODELS = ['/tmp/troupe-memory/qwen2.5-0.5b', '/tmp/troupe-memory/qwen3-0.6b'];

export interface Case {
  readonly phase: 'forward' | 'lora' | 'qlora' | 'full' | 'grpo';
  readonly backend: 'cpu' | 'wasm';
  readonly batch: number;
  readonly seq: number;
  /** Timed repetitions after the warm-up. */
  readonly reps: number;
  /** More child flags: --checkpoint, --offload, --precision bf16, --rank R, --targets a,b. */
  readonly flags?: readonly string[];
}

// One timed step after the warm-up for the cpu training rows: a step of a 0.5 B model there is
// minutes of CPU (TROUPE_MEMORY_REPS raises every row's count).
const CASES: readonly Case[] = [
  { phase: 'forward', backend: 'cpu', batch: 1, seq: 256, reps: 2 },
  { phase: 'lora', backend: 'cpu', batch: 1, seq: 256, reps: 2 },
  { phase: 'lora', backend: 'cpu', batch: 4, seq: 256, reps: 1 },
  { phase: 'full', backend: 'cpu', batch: 1, seq: 256, reps: 1 },
  { phase: 'grpo', backend: 'cpu', batch: 4, seq: 128, reps: 1 },
  { phase: 'lora', backend: 'wasm', batch: 1, seq: 256, reps: 2 },
  { phase: 'lora', backend: 'wasm', batch: 4, seq: 256, reps: 1 },
  { phase: 'lora', backend: 'wasm', batch: 4, seq: 256, reps: 1, flags: ['--checkpoint'] },
];

const METHOD: Record<Case['phase'], string> = {
  forward: 'forward (log-probs)',
  lora: 'LoRA SFT step (AdamW)',
  qlora: 'QLoRA SFT step (NF4 base, AdamW)',
  full: 'full fine-tune step (AdamW)',
  grpo: 'GRPO iteration (4 samples, reference, full AdamW)',
};

/**
 * A child process, under `flock TROUPE_BENCH_LOCK` when that is set: on a machine others
 * benchmark on too, each measurement holds the lock alone rather than the whole suite.
 */
export function spawnLocked(argv: readonly string[], env: NodeJS.ProcessEnv) {
  const lock = env.TROUPE_BENCH_LOCK;
  const [cmd, ...rest] = lock ? ['flock', lock, ...argv] : argv;
  return spawnSync(cmd, rest, { encoding: 'utf8', maxBuffer: 1 << 26, env });
}

/**
 * One case in a child process of its own: its RESULT line, or the error it printed. The child
 * gets the environment the `troupe` command runs in (glibc's malloc in huge pages,
 * src/cli/huge-pages.ts); PyTorch's side keeps the plain one a Python user has.
 */
export function runCase(dir: string, c: Case, log: (l: string) => void): Record<string, unknown> {
  const reps = Number(process.env.TROUPE_MEMORY_REPS ?? c.reps);
  const args = [dir, c.phase, c.backend, String(c.batch), String(c.seq), '--reps', String(reps)];
  const argv = [process.execPath, '--import', 'tsx', CHILD, ...args, ...(c.flags ?? [])];
  const r = spawnLocked(argv, hugePagesEnv(process.env, onGlibc()) ?? process.env);
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  const out = line ? JSON.parse(line.slice(7)) : { error: (r.stderr ?? '').slice(-2000) };
  const flag = (name: string, d: string) => {
    const i = c.flags?.indexOf(name) ?? -1;
    return i >= 0 ? c.flags![i + 1] : d;
  };
  const lora = c.phase === 'lora' || c.phase === 'qlora';
  const method =
    METHOD[c.phase] +
    (lora ? `, r ${flag('--rank', '8')} on ${flag('--targets', 'q,v')}` : '') +
    (c.flags?.includes('--checkpoint') ? ', checkpointed' : '') +
    (c.flags?.includes('--offload') ? ', AdamW offloaded' : '') +
    (c.flags?.includes('--precision') ? `, ${flag('--precision', 'fp32')}` : '');
  const row = { model: dir.split('/').pop(), method, ...c, ...out };
  log(
    `${row.model} ${method} ${c.backend} ${c.batch}×${c.seq}: ` +
      (out.error
        ? `failed: ${String(out.error).split('\n')[0].slice(0, 300)}`
        : `peak RSS ${out.peakRssMiB} MiB (after load ${out.peakRssLoadMiB}), predicted ` +
          `${out.predictedMiB} MiB, ${out.tokensPerS.toFixed(1)} tok/s, ${out.cpuSeconds.toFixed(1)} CPU s a step`),
  );
  return row;
}

const gb = (mib: unknown) => (typeof mib === 'number' ? (mib / 1024).toFixed(2) : '—');

function table(rows: readonly Record<string, unknown>[]): string {
  const lines = [
    '| model | job | backend | batch × seq | predicted peak (GiB) | peak RSS (GiB) | tokens/s | CPU s / step |',
    '|---|---|---|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const err = r.error ? String(r.error) : undefined;
    const code = typeof r.code === 'string' ? r.code : undefined;
    lines.push(
      `| ${r.model} | ${r.method} | ${r.backend} | ${r.batch} × ${r.seq} | ${gb(r.predictedMiB)} | ` +
        `${err ? `refused: ${code ?? err.split('\n')[0].slice(0, 80)}` : gb(r.peakRssMiB)} | ` +
        `${typeof r.tokensPerS === 'number' ? r.tokensPerS.toFixed(1) : '—'} | ` +
        `${typeof r.cpuSeconds === 'number' ? r.cpuSeconds.toFixed(1) : '—'} |`,
    );
  }
  return lines.join('\n');
}

export const memorySuite: Suite = {
  name: 'memory',
  description:
    'predicted memory vs peak RSS: forward, LoRA and full fine-tune steps, a GRPO iteration on 0.5 B models (cpu backend), and the wasm heap refusal',
  async run({ quick, log }) {
    const models = (process.env.TROUPE_MEMORY_MODELS?.split(',') ?? DEFAULT_MODELS).filter((d) => {
      const ok = existsSync(`${d}/config.json`);
      if (!ok) log(`${d}: missing (make it with scripts/memory/make-models.py); skipped`);
      return ok;
    });
    const cases = quick ? CASES.filter((c) => c.phase === 'forward' || c.phase === 'lora') : CASES;
    const rows: Record<string, unknown>[] = [];
    for (const dir of models) for (const c of cases) rows.push(runCase(dir, c, log));
    // TROUPE_MEMORY_KEEP=1: keep the last results' rows of models not run now (one model a run)
    if (process.env.TROUPE_MEMORY_KEEP === '1' && existsSync(RESULTS)) {
      const ran = new Set(rows.map((r) => r.model));
      const old = JSON.parse(readFileSync(RESULTS, 'utf8')).rows as Record<string, unknown>[];
      rows.unshift(...old.filter((r) => !ran.has(r.model)));
    }
    return { rows, markdown: table(rows) };
  },
};
