import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { RandomStream, type StreamKey } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { type ModelConfig, validateConfig } from '../../src/policy/config.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { Trainable } from '../../src/policy/trainable.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

/**
 * Dropout while training: the config's rates (a checkpoint's embd_pdrop / attn_pdrop /
 * resid_pdrop, attention_dropout) applied to the embeddings, the attention probabilities and each
 * sub-layer's output, with masks drawn from a seeded stream keyed by step and purpose. Checked
 * against the float64 reference given the same masks, and for what training relies on: the same
 * key gives the same masks (a checkpointed block recomputes them), no key means no dropout.
 */
const RATES = { embedding: 0.2, attention: 0.3, residual: 0.25 };
const CASES: Record<string, ModelConfig> = {
  gpt2: validateConfig({ ...TINY.gpt2, dropout: RATES }),
  llama: validateConfig({ ...TINY.llama, dropout: RATES }),
  gemma2: validateConfig({ ...TINY.gemma2, dropout: RATES }),
};
const KEY: StreamKey = { seed: 3, step: 5, actor: 'policy' };

const rowsOf = (batch: TokenBatch, key: 'ids' | 'mask') =>
  Array.from({ length: batch.batch }, (_, b) => [
    ...batch[key].subarray(b * batch.length, (b + 1) * batch.length),
  ]);

const masksOf =
  (key: StreamKey) =>
  (purpose: string, shape: number[], rate: number): Float32Array =>
    // the stream the model draws from for `purpose`
    RandomStream.of({ ...key, purpose: `dropout/${purpose}` })
      .uniform(shape.reduce((a, b) => a * b, 1))
      .map((u) => (u >= rate ? 1 / (1 - rate) : 0));

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`dropout on ${backend}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(Object.keys(CASES))(
      '%s: a training forward equals the float64 reference with the same masks',
      async (name) => {
        const c = CASES[name];
        const state = randomState(c, 40);
        const model = CausalLM.fromState(c, state);
        const batch = leftPad(randomRows(c, [6, 4], 41), 0);
        const V = c.vocabSize;
        const real = (x: ArrayLike<number>) => {
          const out: number[] = [];
          batch.mask.forEach((m, i) => {
            if (m) for (let j = 0; j < V; j++) out.push(x[i * V + j]);
          });
          return out;
        };
        model.dropoutKey = KEY;
        const trained = await expectNoLeak(async () => {
          const h = model.forward(batch);
          const lg = model.logits(h);
          const out = await read(lg);
          tf.dispose([h, lg]);
          return out;
        });
        const ref = referenceForward(
          c,
          state,
          rowsOf(batch, 'ids'),
          rowsOf(batch, 'mask'),
          masksOf(KEY),
        );
        expectClose(real(trained), real(ref.logits), { atol: 2e-4, rtol: 2e-4, what: 'logits' });
        // no key: evaluation, no dropout
        model.dropoutKey = undefined;
        const evaluated = await read(model.logits(model.forward(batch)));
        const plain = referenceForward(c, state, rowsOf(batch, 'ids'), rowsOf(batch, 'mask'));
        expectClose(real(evaluated), real(plain.logits), { atol: 2e-4, rtol: 2e-4, what: 'eval' });
        expect(
          Math.max(...real(trained).map((v, i) => Math.abs(v - real(evaluated)[i]))),
        ).toBeGreaterThan(1e-2);
        model.dispose();
      },
    );

    it('gradient checkpointing recomputes the same masks (same gradients)', async () => {
      const c = CASES.llama;
      const model = CausalLM.fromState(c, randomState(c, 42));
      const batch = leftPad(randomRows(c, [5, 3], 43), 0);
      model.dropoutKey = KEY;
      const grads = (checkpoint: boolean) =>
        tf.variableGrads(
          () => tf.sum(tf.square(model.logits(model.forward(batch, { checkpoint })))) as tf.Scalar,
        );
      const a = grads(false);
      const b = grads(true);
      for (const [n, g] of Object.entries(a.grads)) {
        expectClose(await read(b.grads[n]), await read(g), { atol: 1e-5, rtol: 1e-4, what: n });
      }
      tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
      model.dispose();
    });
  });
}

describe('dropout in a Trainable', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('keeps, replaces or turns off the config rates, and keys the masks by step', async () => {
    const c = CASES.gpt2;
    const make = (rates: boolean | Partial<typeof RATES>) =>
      Trainable.create({ model: { config: c, seed: 1 }, dropout: { rates, seed: 9 } }, 'policy');
    const on = await make(true);
    const off = await make(false);
    const some = await make({ attention: 0 });
    expect(on.model.config.dropout).toEqual(RATES);
    expect(off.model.config.dropout).toEqual({ embedding: 0, attention: 0, residual: 0 });
    expect(some.model.config.dropout).toEqual({ ...RATES, attention: 0 });
    const batch = leftPad(randomRows(c, [5, 5], 44), 0);
    const loss = async (t: Trainable, step: number) => {
      const r = await t.step(
        [
          () => ({
            loss: tf.mean(tf.square(t.model.logits(t.model.forward(batch)))) as tf.Scalar,
            weight: 1,
          }),
        ],
        0,
        step,
      );
      return r.loss;
    };
    // lr 0: the weights stay, so only the masks change the loss
    const a1 = await loss(on, 1);
    const a1again = await loss(on, 1);
    const a2 = await loss(on, 2);
    expect(a1again).toBe(a1);
    expect(a2).not.toBe(a1);
    expect(on.model.dropoutKey).toBeUndefined();
    const b1 = await loss(off, 1);
    expect(await loss(off, 2)).toBe(b1);
    for (const t of [on, off, some]) t.model.dispose();
  });
});
