import {
  type ActorMemory,
  describePrediction,
  gib,
  type MemoryLimits,
  machineLimits,
  threadPeak,
} from '../algorithms/memory-check.js';
import { TroupeError } from '../errors.js';
import type { ModelConfig } from '../policy/config.js';
import { readModelConfig } from '../policy/io.js';
import { type MemoryJob, type MemoryPrediction, predictMemory } from '../policy/memory.js';

/*
 * `troupe doctor --model DIR`: "will it fit" for a checkpoint (its config.json only: no weight
 * is read), each way of running it beside the two limits that matter here: one wasm actor's heap
 * (wasm32, 4 GiB) and the host's available memory. bench/suites/memory.ts measures the same jobs'
 * peak RSS beside these predictions (docs/memory.md).
 */

export interface MemoryRowReport {
  readonly job: string;
  readonly prediction: MemoryPrediction;
  readonly peakBytes: number;
  readonly fitsWasm: boolean;
  readonly fitsHost: boolean;
}

export interface MemoryReport {
  readonly model: string;
  readonly params: number;
  /** The frozen models' precision: under bf16 the forward, generation, generator and reference hold bf16 matrices. */
  readonly precision: 'fp32' | 'bf16';
  readonly batch: number;
  readonly seq: number;
  readonly limits: MemoryLimits;
  readonly rows: readonly MemoryRowReport[];
  /**
   * Online RL (PPO, GRPO, RLOO, REINFORCE++), a rollout of `batch` rows of `seq` tokens (half
   * prompt): each actor's thread as memory-check-rl.ts predicts it (a step's peak and its other
   * passes), then each run's threads together against the host.
   */
  readonly rl: readonly MemoryRowReport[];
  readonly rlRuns: readonly {
    readonly run: string;
    readonly bytes: number;
    readonly fitsHost: boolean;
  }[];
}

/**
 * The jobs doctor predicts for a model at batch × seq; under precision bf16 the frozen ones (the
 * forward and generation) hold bf16 matrices, the trained ones keep fp32 masters.
 */
export function doctorJobs(
  config: ModelConfig,
  batch: number,
  seq: number,
  precision: 'fp32' | 'bf16' = 'fp32',
): [string, MemoryJob][] {
  const base = { config, batch, seq };
  const lora = { rank: 8, targetModules: ['q', 'v'] };
  return [
    ['forward (scoring, a frozen reference)', { ...base, method: 'none', precision }],
    [
      `generation (KV cache of ${batch}×${seq})`,
      { ...base, method: 'none', generation: { batch, length: seq }, precision },
    ],
    ['LoRA r8 q/v, AdamW', { ...base, method: 'lora', lora }],
    ['QLoRA (nf4) r8 q/v', { ...base, method: 'lora', lora, quantize: 'nf4' }],
    ['full fine-tune, AdamW', { ...base, method: 'full' }],
    ['full, gradient checkpointing', { ...base, method: 'full', checkpoint: true }],
    [
      'full, checkpointing + AdamW offload',
      { ...base, method: 'full', checkpoint: true, offloadOptimizer: true },
    ],
  ];
}

/**
 * The RL actors doctor predicts: `batch` rollout rows of `seq` tokens, half of them prompt; under
 * precision bf16 the generator and the reference hold bf16 matrices.
 */
export function doctorRlActors(
  config: ModelConfig,
  batch: number,
  seq: number,
  precision: 'fp32' | 'bf16' = 'fp32',
): ActorMemory[] {
  const base = { config, batch, seq };
  const lora = { rank: 8, targetModules: ['q', 'v'] };
  const logprobs = { what: "the rollout's log-probs", job: { ...base, method: 'none' as const } };
  const prompt = Math.max(1, Math.floor(seq / 2));
  return [
    {
      actor: 'policy, full AdamW',
      backend: 'wasm',
      job: { ...base, method: 'full' },
      phases: [logprobs],
    },
    {
      actor: 'policy, LoRA r8 q/v',
      backend: 'wasm',
      job: { ...base, method: 'lora', lora },
      phases: [logprobs],
    },
    {
      actor: `generator (KV cache of ${batch}×${seq}, prompts of ${prompt})`,
      backend: 'wasm',
      job: {
        ...base,
        seq: prompt,
        method: 'none',
        generation: { batch, length: seq },
        precision,
      },
    },
    {
      actor: 'reference (KL), forward',
      backend: 'wasm',
      job: { ...base, method: 'none', precision },
    },
    {
      actor: 'critic (PPO), full AdamW + value head',
      backend: 'wasm',
      job: { ...base, method: 'full', heads: ['value_head'] },
      phases: [
        { what: "the rollout's values", job: { ...base, method: 'none', heads: ['value_head'] } },
      ],
    },
  ];
}

export async function memoryReport(
  dir: string,
  opts: { batch?: number; seq?: number; precision?: string; limits?: MemoryLimits } = {},
): Promise<MemoryReport> {
  const precision = opts.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `doctor --precision: 'fp32' or 'bf16', got '${precision}'`,
      { details: { field: 'precision' } },
    );
  }
  const config = await readModelConfig(dir);
  const batch = opts.batch ?? 1;
  const seq = opts.seq ?? 512;
  const limits = opts.limits ?? machineLimits();
  // peakBytes: host memory on the cpu backend (offloaded moments included); fitsWasm: the
  // backend's tensors against the heap (offloaded moments and bf16 matrices live outside it, a
  // bf16 model's fp32 load inside)
  const rows = doctorJobs(config, batch, seq, precision).map(([job, j]) => {
    const prediction = predictMemory(j);
    const peakBytes = prediction.peak + prediction.hostOptimizer;
    return {
      job,
      prediction,
      peakBytes,
      fitsWasm: prediction.backendPeak <= limits.wasmHeap,
      fitsHost: peakBytes <= limits.host,
    };
  });
  const actors = doctorRlActors(config, batch, seq, precision);
  const rl = actors.map((a) => {
    const { prediction, backendPeak } = threadPeak(a);
    const peakBytes = threadPeak({ ...a, backend: 'cpu' }).host;
    return {
      job: a.actor,
      prediction,
      peakBytes,
      fitsWasm: backendPeak <= limits.wasmHeap,
      fitsHost: peakBytes <= limits.host,
    };
  });
  const run = (name: string, threads: number[]) => {
    const bytes = threads.reduce((s, i) => s + rl[i].peakBytes, 0);
    return { run: name, bytes, fitsHost: bytes <= limits.host };
  };
  const rlRuns = [
    run('GRPO/RLOO, full (policy, generator, reference)', [0, 2, 3]),
    run('GRPO/RLOO, LoRA (policy, generator, reference)', [1, 2, 3]),
    run('PPO, full (policy, generator, reference, critic)', [0, 2, 3, 4]),
  ];
  return {
    model: dir,
    params: rows[0].prediction.params,
    precision,
    batch,
    seq,
    limits,
    rows,
    rl,
    rlRuns,
  };
}

export function formatMemoryReport(r: MemoryReport): string {
  const w = Math.max(...r.rows.map((x) => x.job.length));
  const wr = Math.max(...r.rl.map((x) => x.job.length));
  return [
    `Memory: ${r.model} (${(r.params / 1e6).toFixed(1)} M parameters) at ${r.batch} × ${r.seq} tokens, ` +
      (r.precision === 'bf16'
        ? 'precision bf16 (frozen models hold bf16 matrices; trained ones fp32 masters)'
        : 'fp32'),
    `  limits: wasm actor heap ${gib(r.limits.wasmHeap)} (wasm32) · host available ${gib(r.limits.host)}`,
    ...r.rows.map(
      (x) =>
        `  ${x.job.padEnd(w)}  ${describePrediction(x.prediction)}  ` +
        `wasm ${x.fitsWasm ? '✓' : '✗'} cpu ${x.fitsHost ? '✓' : '✗'}`,
    ),
    `  Online RL, a rollout of ${r.batch} rows × ${r.seq} tokens, each actor's thread (its step and its other passes):`,
    ...r.rl.map(
      (x) =>
        `  ${x.job.padEnd(wr)}  thread peak ${gib(x.peakBytes)}; ${describePrediction(x.prediction)}  ` +
        `wasm ${x.fitsWasm ? '✓' : '✗'} cpu ${x.fitsHost ? '✓' : '✗'}`,
    ),
    ...r.rlRuns.map((x) => `  ${x.run}: ${gib(x.bytes)} of host memory ${x.fitsHost ? '✓' : '✗'}`),
    '  (✗ on wasm, ✓ on cpu: set runtime.backend: cpu. Peak RSS adds ~0.3 GiB of runtime and, while',
    '  loading, the checkpoint file: measured beside these in docs/memory.md)',
  ].join('\n');
}
