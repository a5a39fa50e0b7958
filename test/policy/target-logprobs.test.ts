import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { targetLogProbs } from '../../src/policy/target-logprobs.js';
import { expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { thrown } from '../helpers/thrown.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

/** log-softmax(z/τ)[label] and the entropy of softmax(z/τ) of one row of float64 logits. */
function reference(z: Float64Array, label: number, tau: number): { logp: number; entropy: number } {
  const s = Array.from(z, (v) => v / tau);
  const m = Math.max(...s);
  const lse = m + Math.log(s.reduce((a, v) => a + Math.exp(v - m), 0));
  const entropy = -s.reduce((a, v) => a + Math.exp(v - lse) * (v - lse), 0);
  return { logp: s[label] - lse, entropy };
}

describe('targetLogProbs: the one log-prob-of-a-label function', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each([
    ['llama', 1, 1],
    ['llama', 3, 0.7],
    ['gemma2', 2, 1.3], // soft-capped logits: the head runs through the whole logits
  ] as const)(
    '%s, start %d, τ %d: log π and entropy of each target against a float64 forward',
    async (family, start, tau) => {
      const c = TINY[family];
      const state = randomState(c, 17);
      const model = CausalLM.fromState(c, state);
      const rows = randomRows(c, [7, 5], 4);
      const batch = rightPad(rows, 0);
      const { batch: B, length: T } = batch;
      const padded = rows.map((r) => [...r, ...Array(T - r.length).fill(0)]);
      const { logits } = referenceForward(
        c,
        state,
        padded,
        rows.map((r) => [...r.map(() => 1), ...Array(T - r.length).fill(0)]),
      );
      const V = c.vocabSize;
      await expectNoLeak(async () => {
        const out = tf.tidy(() =>
          targetLogProbs(model, batch, { start, temperature: tau, entropy: true }),
        );
        expect(out.logp.shape).toEqual([B, T - start]);
        expect(out.entropy?.shape).toEqual([B, T - start]);
        const lp = await read(out.logp);
        const ent = await read(out.entropy!);
        tf.dispose([out.logp, out.entropy!]);
        let checked = 0;
        rows.forEach((r, b) => {
          // Target t is predicted at t − 1; compare where that position is a real token.
          for (let t = start; t < T; t++) {
            if (t - 1 >= r.length) continue;
            const z = logits.subarray((b * T + t - 1) * V, (b * T + t) * V);
            const want = reference(z, padded[b][t], tau);
            const i = b * (T - start) + t - start;
            expect(lp[i]).toBeCloseTo(want.logp, 4);
            expect(ent[i]).toBeCloseTo(want.entropy, 4);
            checked++;
          }
        });
        expect(checked).toBeGreaterThanOrEqual(T - start);
      });
      model.dispose();
    },
  );

  it('start = P gives the columns ≥ P of start = 1 (a rollout’s actions are its last tokens)', async () => {
    const c = TINY.llama;
    const model = CausalLM.fromState(c, randomState(c, 5));
    const batch = rightPad(randomRows(c, [6, 6, 6], 8), 0);
    const all = await read(tf.tidy(() => targetLogProbs(model, batch).logp));
    const tail = await read(tf.tidy(() => targetLogProbs(model, batch, { start: 4 }).logp));
    for (let b = 0; b < 3; b++)
      for (let j = 0; j < 2; j++) expect(tail[b * 2 + j]).toBeCloseTo(all[b * 5 + 3 + j], 5);
    model.dispose();
  });

  it('refuses a start outside the row, naming the range', () => {
    const c = TINY.llama;
    const model = CausalLM.fromState(c, randomState(c, 5));
    const batch = rightPad(randomRows(c, [4], 8), 0);
    expect(thrown(() => targetLogProbs(model, batch, { start: 4 })).message).toBe(
      'targetLogProbs: start must be an integer in [1, 3] for rows of 4 tokens, got 4',
    );
    expect(thrown(() => targetLogProbs(model, batch, { start: 0 })).code).toBe('BAD_ARGUMENT');
    model.dispose();
  });
});
