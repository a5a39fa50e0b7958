import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/config.js';
import { CausalLM, type Tensor32 } from '../../src/policy/model/causal-lm.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

const FAMILIES = Object.keys(TINY) as (keyof typeof TINY)[];

/** Σ w ⊙ logits over real positions: the scalar whose gradient is checked. */
function weights(batch: TokenBatch, V: number, seed: number): Float32Array {
  const w = RandomStream.of({ seed, step: 0, actor: 'grad-weights' }).normal(
    batch.batch * batch.length * V,
  );
  batch.mask.forEach((m, i) => {
    if (!m) w.fill(0, i * V, (i + 1) * V);
  });
  return w;
}

/** tfjs gradients of Σ w ⊙ logits with respect to every parameter, by Troupe name. */
function modelGrads(
  model: CausalLM,
  batch: TokenBatch,
  w: tf.Tensor,
  checkpoint = false,
): Map<string, tf.Tensor> {
  const names = [...model.params.keys()];
  const { value, grads } = tf.variableGrads(
    () => {
      const h = model.forward(batch, { checkpoint });
      return tf.sum(tf.mul(model.logits(h), w)) as tf.Scalar;
    },
    names.map((n) => model.params.get(n)!),
  );
  value.dispose();
  const byVar = new Map([...model.params].map(([n, v]) => [v.name, n]));
  return new Map(Object.entries(grads).map(([k, g]) => [byVar.get(k)!, g]));
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `CausalLM gradients on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(FAMILIES)(
        '%s: every parameter gradient equals finite differences of the float64 reference',
        async (family) => {
          const c = TINY[family];
          const state = randomState(c, 21);
          const model = CausalLM.fromState(c, state);
          const batch = leftPad(randomRows(c, [5, 3], 2), 0);
          const w = weights(batch, c.vocabSize, 3);
          const ids = [0, 1].map((b) => [
            ...batch.ids.subarray(b * batch.length, (b + 1) * batch.length),
          ]);
          const mask = [0, 1].map((b) => [
            ...batch.mask.subarray(b * batch.length, (b + 1) * batch.length),
          ]);
          // The reference runs in float64 on float64 copies of the parameters.
          const state64 = new Map<string, Tensor32>(
            [...state].map(([n, t]) => [
              n,
              { shape: t.shape, data: Float64Array.from(t.data) as unknown as Float32Array },
            ]),
          );
          const objective = () => {
            const { logits } = referenceForward(c, state64, ids, mask);
            let s = 0;
            for (let i = 0; i < logits.length; i++) s += w[i] * logits[i];
            return s;
          };
          await expectNoLeak(async () => {
            const wt = tf.tensor(w, [batch.batch, batch.length, c.vocabSize]);
            const grads = modelGrads(model, batch, wt);
            const pick = RandomStream.of({ seed: 4, step: 0, actor: 'grad-pick' });
            for (const [name, g] of grads) {
              expect(g.shape, name).toEqual(state.get(name)!.shape);
              const gv = await read(g);
              const data = state64.get(name)!.data as unknown as Float64Array;
              const got: number[] = [];
              const want: number[] = [];
              for (let n = 0; n < 3; n++) {
                const i = pick.nextInt(data.length);
                const keep = data[i];
                const eps = 1e-5;
                data[i] = keep + eps;
                const up = objective();
                data[i] = keep - eps;
                const down = objective();
                data[i] = keep;
                got.push(gv[i]);
                want.push((up - down) / (2 * eps));
              }
              expectClose(got, want, { atol: 2e-3, rtol: 2e-3, what: `d/d ${name}` });
            }
            tf.dispose([wt, ...grads.values()]);
          });
          model.dispose();
        },
      );

      it.each(FAMILIES)('%s: gradient checkpointing gives the same gradients', async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 8));
        const batch = leftPad(randomRows(c, [6, 4], 5), 0);
        const wt = tf.tensor(weights(batch, c.vocabSize, 6), [
          batch.batch,
          batch.length,
          c.vocabSize,
        ]);
        await expectNoLeak(async () => {
          const plain = modelGrads(model, batch, wt, false);
          const ckpt = modelGrads(model, batch, wt, true);
          expect([...ckpt.keys()].sort()).toEqual([...plain.keys()].sort());
          for (const [name, g] of plain) {
            expectClose(await read(ckpt.get(name)!), await read(g), {
              atol: 1e-6,
              rtol: 1e-5,
              what: name,
            });
          }
          tf.dispose([...plain.values(), ...ckpt.values()]);
        });
        wt.dispose();
        model.dispose();
      });
    },
  );
}

describe('gradient checkpointing memory', () => {
  it('keeps less activation memory at the peak (measured with tf.profile on cpu)', async () => {
    await useBackend('cpu');
    const c = gpt2Config({ vocabSize: 64, hidden: 64, layers: 6, heads: 4, maxPositions: 64 });
    const model = CausalLM.init(c, { seed: 1 });
    const batch = leftPad(randomRows(c, Array(4).fill(48), 1), 0);
    const wt = tf.tensor(weights(batch, c.vocabSize, 2), [4, 48, c.vocabSize]);
    const peak = async (checkpoint: boolean) => {
      const info = await tf.profile(() => {
        const g = modelGrads(model, batch, wt, checkpoint);
        tf.dispose([...g.values()]);
      });
      return info.peakBytes;
    };
    const plain = await peak(false);
    const ckpt = await peak(true);
    expect(ckpt).toBeLessThan(plain);
    wt.dispose();
    model.dispose();
  });
});
