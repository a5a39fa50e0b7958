import type { TokenBatch } from '../../src/data/index.js';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM, Lora, lmLoss, type ModelConfig } from '../../src/policy/index.js';
import { type MemoryJob, predictMemory } from '../../src/policy/memory.js';

/** The adapters the memory tests train: rank 4 on q and v. */
export const LORA = { rank: 4, targetModules: ['q', 'v'] };

/** B full rows of T tokens, ids spread over the vocabulary V. */
export function tokenBatch(B: number, T: number, V: number): TokenBatch {
  return {
    ids: Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % V),
    mask: new Uint8Array(B * T).fill(1),
    batch: B,
    length: T,
  } as TokenBatch;
}

/**
 * One training step of a fresh model (wasm): its measured peak above what was live before it
 * (wasm heap, each buffer once), and the predictor's peak above the weights and optimizer state.
 * LoRA freezes the base as Trainable does (trainable false), which the LM head and the
 * checkpointed recompute read.
 */
export function stepPeak(
  config: ModelConfig,
  job: Omit<MemoryJob, 'config'>,
  seed: number,
): { measured: number; predicted: number } {
  const model = CausalLM.init(config, { seed });
  let vars = [...model.params.values()];
  if (job.method === 'lora') {
    const l = new Lora(model, { ...LORA, alpha: 8, dropout: 0 }, { seed: 1 });
    vars = l.trainableNames.map((n) => model.params.get(n)!);
    const names = new Set(l.trainableNames);
    for (const [n, v] of model.params) v.trainable = names.has(n);
  }
  const b = tokenBatch(job.batch, job.seq, config.vocabSize);
  const start = wasmTensorBytes({ reset: true })!.liveBytes;
  const { value, grads } = tf.variableGrads(
    () => lmLoss(model, b, { checkpoint: job.checkpoint }).loss,
    vars,
  );
  const measured = wasmTensorBytes()!.peakBytes - start;
  tf.dispose([value, ...Object.values(grads)]);
  model.dispose();
  const p = predictMemory({ config, ...job });
  return { measured, predicted: p.peak - p.weights - p.optimizer };
}
