import {
  describePrediction,
  gib,
  type MemoryLimits,
  machineLimits,
} from '../algorithms/memory-check.js';
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
  readonly batch: number;
  readonly seq: number;
  readonly limits: MemoryLimits;
  readonly rows: readonly MemoryRowReport[];
}

/** The jobs doctor predicts for a model at batch × seq. */
export function doctorJobs(config: ModelConfig, batch: number, seq: number): [string, MemoryJob][] {
  const base = { config, batch, seq };
  const lora = { rank: 8, targetModules: ['q', 'v'] };
  return [
    ['forward (scoring, a frozen reference)', { ...base, method: 'none' }],
    [
      `generation (KV cache of ${batch}×${seq})`,
      { ...base, method: 'none', generation: { batch, length: seq } },
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

export async function memoryReport(
  dir: string,
  opts: { batch?: number; seq?: number; limits?: MemoryLimits } = {},
): Promise<MemoryReport> {
  const config = await readModelConfig(dir);
  const batch = opts.batch ?? 1;
  const seq = opts.seq ?? 512;
  const limits = opts.limits ?? machineLimits();
  const rows = doctorJobs(config, batch, seq).map(([job, j]) => {
    const prediction = predictMemory(j);
    const peakBytes = prediction.peak + prediction.hostOptimizer;
    return {
      job,
      prediction,
      peakBytes,
      // offloaded moments live in host memory, outside the wasm heap
      fitsWasm: prediction.peak <= limits.wasmHeap,
      fitsHost: peakBytes <= limits.host,
    };
  });
  return { model: dir, params: rows[0].prediction.params, batch, seq, limits, rows };
}

export function formatMemoryReport(r: MemoryReport): string {
  const w = Math.max(...r.rows.map((x) => x.job.length));
  return [
    `Memory: ${r.model} (${(r.params / 1e6).toFixed(1)} M parameters) at ${r.batch} × ${r.seq} tokens, fp32`,
    `  limits: wasm actor heap ${gib(r.limits.wasmHeap)} (wasm32) · host available ${gib(r.limits.host)}`,
    ...r.rows.map(
      (x) =>
        `  ${x.job.padEnd(w)}  ${describePrediction(x.prediction)}  ` +
        `wasm ${x.fitsWasm ? '✓' : '✗'} cpu ${x.fitsHost ? '✓' : '✗'}`,
    ),
    '  (✗ on wasm, ✓ on cpu: set runtime.backend: cpu. Peak RSS adds ~0.3 GiB of runtime and, while',
    '  loading, the checkpoint file: measured beside these in docs/memory.md)',
  ].join('\n');
}
