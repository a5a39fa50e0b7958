import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

describe('lmLoss', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each(['llama', 'gemma2'] as const)(
    '%s: is the mean next-token NLL over the selected real targets (against the float64 reference; Gemma 2 with its soft-capped logits)',
    async (family) => {
      const c = TINY[family];
      const state = randomState(c, 60);
      const model = CausalLM.fromState(c, state);
      const rows = randomRows(c, [6, 4], 3);
      const batch = rightPad(rows, 0);
      // Count only targets at positions ≥ 2 of each row (a prompt of two tokens).
      const lossMask = new Uint8Array(batch.batch * batch.length);
      for (let b = 0; b < 2; b++)
        for (let t = 2; t < batch.length; t++) lossMask[b * batch.length + t] = 1;
      const { logits } = referenceForward(
        c,
        state,
        rows.map((r) => [...r, ...Array(6 - r.length).fill(0)]),
        rows.map((r) => [...r.map(() => 1), ...Array(6 - r.length).fill(0)]),
      );
      let nll = 0;
      let n = 0;
      rows.forEach((r, b) => {
        for (let t = 2; t < r.length; t++) {
          const row = logits.subarray((b * 6 + t - 1) * c.vocabSize, (b * 6 + t) * c.vocabSize);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
          nll += lse - row[r[t]];
          n++;
        }
      });
      await expectNoLeak(async () => {
        const { loss, tokens } = lmLoss(model, batch, { lossMask });
        expect(tokens).toBe(n);
        expect((await read(loss))[0]).toBeCloseTo(nll / n, 4);
        loss.dispose();
      });
      expect(() => lmLoss(model, batch, { lossMask: new Uint8Array(12) })).toThrow(
        /no target token is selected/,
      );
      model.dispose();
    },
  );
});
