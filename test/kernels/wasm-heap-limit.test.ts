import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TroupeError } from '../../src/errors.js';
import { setWasmHeapLimit } from '../../src/kernels/backends/wasm.js';
import { WASM_HEAP_MAX, WASM_HEAP_RESERVE } from '../../src/kernels/backends/wasm-heap-limit.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM, gpt2Config, lmLoss } from '../../src/policy/index.js';
import { useBackend } from '../helpers/backends.js';
import { thrown } from '../helpers/thrown.js';

const MiB = 2 ** 20;

describe('wasm heap exhaustion is an OUT_OF_MEMORY error, never an abort', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });
  afterEach(() => setWasmHeapLimit(WASM_HEAP_MAX));

  it('a tensor past a deliberately small ceiling is refused, naming the sizes; the heap still works', async () => {
    const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    const limit = heap + 32 * MiB + WASM_HEAP_RESERVE;
    setWasmHeapLimit(limit);
    const kept: tf.Tensor[] = [];
    const e = thrown(() => {
      for (let i = 0; i < 64; i++) kept.push(tf.zeros([4 * MiB])); // 16 MiB each
    });
    expect(e).toBeInstanceOf(TroupeError);
    expect(e.code).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/a tensor of 16\.0 MiB does not fit/);
    expect(e.message).toMatch(/backend 'cpu'/);
    expect(e.message).toMatch(/LoRA/);
    expect(e.details).toMatchObject({ requestedBytes: 16 * MiB, limitBytes: limit });
    expect(e.details.tensorBytes as number).toBeGreaterThanOrEqual(kept.length * 16 * MiB);
    // at most the room below the ceiling, less the reserve, was handed out
    expect(kept.length).toBeLessThanOrEqual(2);
    const after = tf.tidy(() => tf.sum(tf.add(tf.ones([1000]), 1)));
    expect((await after.data())[0]).toBe(2000);
    tf.dispose([after, ...kept]);
  });

  it('a training step that does not fit fails with the error, and a smaller one still computes the same loss', async () => {
    const config = gpt2Config({ vocabSize: 512, hidden: 64, layers: 2, heads: 4 });
    const model = CausalLM.init(config, { seed: 1 });
    const vars = [...model.params.values()];
    const batch = (B: number, T: number) => ({
      ids: Int32Array.from({ length: B * T }, (_, i) => (i * 31) % 512),
      mask: new Uint8Array(B * T).fill(1),
      batch: B,
      length: T,
    });
    const step = (B: number, T: number) => {
      const { value, grads } = tf.variableGrads(() => lmLoss(model, batch(B, T)).loss, vars);
      const loss = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return loss;
    };
    const first = step(1, 8);
    const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    setWasmHeapLimit(heap + WASM_HEAP_RESERVE + 2 * MiB);
    const e = thrown(() => step(16, 256)); // ~100 MB of activations
    expect(e.code).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/does not fit/);
    // the heap was not written over: the same small step gives the same loss, bit for bit
    // (tfjs keeps the tensors a failed taped forward saved for its backward: a thread that hit
    // the error holds them until it ends)
    setWasmHeapLimit(WASM_HEAP_MAX);
    expect(step(1, 8)).toBe(first);
    model.dispose();
  });
});
