import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenBatch } from '../../src/data/index.js';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import { GradMap, setLeanBackprop } from '../../src/kernels/custom/lean-backprop.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM, Lora, llamaConfig, lmLoss } from '../../src/policy/index.js';
import { useBackend } from '../helpers/backends.js';

/**
 * The lean backward pass (src/kernels/custom/lean-backprop.ts) against tfjs' own: the same
 * gradients bit for bit (same tape, same gradient functions, same order), nothing leaked, and a
 * lower peak of wasm heap bytes (each buffer counted once).
 */

const config = llamaConfig({
  vocabSize: 96,
  hidden: 32,
  layers: 3,
  heads: 4,
  kvHeads: 2,
  intermediate: 48,
  qkvBias: true,
  tieEmbeddings: true,
});

function batch(B: number, T: number): TokenBatch {
  return {
    ids: Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % 96),
    mask: new Uint8Array(B * T).fill(1),
    batch: B,
    length: T,
  } as TokenBatch;
}

/** Every gradient's values (by variable name) and the step's heap peak above its start. */
function step(model: CausalLM, vars: tf.Variable[], b: TokenBatch, checkpoint: boolean) {
  const start = wasmTensorBytes({ reset: true })!.liveBytes;
  const { value, grads } = tf.variableGrads(() => lmLoss(model, b, { checkpoint }).loss, vars);
  const peak = wasmTensorBytes()!.peakBytes - start;
  const out = new Map(Object.entries(grads).map(([n, g]) => [n, Array.from(g.dataSync())]));
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { grads: out, loss, peak };
}

describe('lean backprop', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });
  afterAll(() => setLeanBackprop(true));

  for (const checkpoint of [false, true]) {
    it(`${checkpoint ? 'checkpointed' : 'plain'} full and LoRA training: the same gradients as tfjs' backward, less memory, no leak`, () => {
      const model = CausalLM.init(config, { seed: 4 });
      const full = [...model.params.values()];
      const b = batch(2, 24);
      setLeanBackprop(false);
      const stock = step(model, full, b, checkpoint);
      setLeanBackprop(true);
      const before = tf.memory().numTensors;
      const lean = step(model, full, b, checkpoint);
      expect(tf.memory().numTensors).toBe(before);
      expect(lean.loss).toBe(stock.loss);
      expect([...lean.grads.keys()].sort()).toEqual([...stock.grads.keys()].sort());
      for (const [n, g] of stock.grads) expect(lean.grads.get(n), n).toEqual(g);
      expect(lean.peak).toBeLessThan(stock.peak);

      const lora = new Lora(
        model,
        { rank: 4, alpha: 8, dropout: 0, targetModules: ['q', 'v'] },
        { seed: 1 },
      );
      const adapters = lora.trainableNames.map((n) => model.params.get(n)!);
      // B starts at zero: give it values so that A's gradient is not zero
      for (const v of adapters) v.assign(tf.add(v, 0.05));
      setLeanBackprop(false);
      const stockLora = step(model, adapters, b, checkpoint);
      setLeanBackprop(true);
      const leanLora = step(model, adapters, b, checkpoint);
      for (const [n, g] of stockLora.grads) expect(leanLora.grads.get(n), n).toEqual(g);
      expect(leanLora.peak).toBeLessThanOrEqual(stockLora.peak);
      model.dispose();
    });
  }

  it('a gradient held under two ids is disposed only when both let go', () => {
    const g = new GradMap();
    const t = tf.ones([3]);
    g.set(1, t);
    g.set(2, t);
    g.drop(1);
    expect(t.isDisposed).toBe(false);
    g.drop(2);
    expect(t.isDisposed).toBe(true);
  });

  it('a gradient function that passes dy through to several inputs keeps it for each', () => {
    const x = tf.variable(tf.tensor1d([1, 2, 3]));
    const y = tf.variable(tf.tensor1d([4, 5, 6]));
    const passThrough = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [a, b] = args as tf.Tensor[];
      return {
        value: tf.add(a, b),
        gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [dy as tf.Tensor, dy as tf.Tensor], // one tensor for both
      };
    });
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(passThrough(tf.mul(x, 2), tf.mul(y, 3)) as tf.Tensor, 1)) as tf.Scalar,
      [x, y],
    );
    expect(Array.from(grads[x.name].dataSync())).toEqual([2, 2, 2]);
    expect(Array.from(grads[y.name].dataSync())).toEqual([3, 3, 3]);
    tf.dispose([value, x, y, ...Object.values(grads)]);
  });
});
