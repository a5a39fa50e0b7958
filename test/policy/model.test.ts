import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, rightPad } from '../../src/data/batching/collate.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

const FAMILIES = Object.keys(TINY) as (keyof typeof TINY)[];
/**
 * Families where a KV cache reproduces a full recomputation. Not dynamic NTK: its RoPE base grows
 * with the sequence, so keys cached at length n were rotated with the base of length n, as in
 * transformers (checked against transformers' own cached generation in families.test.ts).
 */
const CACHE_EXACT = FAMILIES.filter((f) => TINY[f].ropeScaling?.type !== 'dynamic');

/** Values at real-token positions only: [B·T·n] → the rows where mask is 1. */
function realRows(x: ArrayLike<number>, mask: Uint8Array, n: number): number[] {
  const out: number[] = [];
  mask.forEach((m, i) => {
    if (m) for (let j = 0; j < n; j++) out.push(x[i * n + j]);
  });
  return out;
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`CausalLM on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(FAMILIES)(
      '%s forward equals the float64 plain-loop reference on a left-padded batch',
      async (family) => {
        const c = TINY[family];
        const state = randomState(c, 11);
        const rows = randomRows(c, [7, 4, 1], 3);
        const batch = leftPad(rows, 0);
        const model = CausalLM.fromState(c, state);
        await expectNoLeak(async () => {
          const hidden = model.forward(batch);
          const logits = model.logits(hidden);
          const ids: number[][] = [];
          const mask: number[][] = [];
          for (let b = 0; b < batch.batch; b++) {
            ids.push([...batch.ids.subarray(b * batch.length, (b + 1) * batch.length)]);
            mask.push([...batch.mask.subarray(b * batch.length, (b + 1) * batch.length)]);
          }
          const ref = referenceForward(c, state, ids, mask);
          expectClose(
            realRows(await read(logits), batch.mask, c.vocabSize),
            realRows(ref.logits, batch.mask, c.vocabSize),
            {
              atol: 2e-4,
              rtol: 2e-4,
              what: `${family} logits`,
            },
          );
          tf.dispose([hidden, logits]);
        });
        model.dispose();
      },
    );

    it.each(FAMILIES)(
      '%s: padding does not change a row (left, right, or none)',
      async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 5));
        const rows = randomRows(c, [6, 3], 9);
        const alone = model.logits(model.forward(leftPad([rows[1]], 0)));
        const left = model.logits(model.forward(leftPad(rows, 0)));
        const right = model.logits(model.forward(rightPad(rows, 0)));
        const V = c.vocabSize;
        const a = await read(alone);
        const l = (await read(left)).subarray((6 + 3) * V); // row 1's last 3 positions
        const r = (await read(right)).subarray(6 * V, (6 + 3) * V); // row 1's first 3 positions
        expectClose(l, a, { atol: 1e-5, rtol: 1e-4, what: 'left-padded' });
        expectClose(r, a, { atol: 1e-5, rtol: 1e-4, what: 'right-padded' });
        tf.dispose([alone, left, right]);
        model.dispose();
      },
    );

    it.each(CACHE_EXACT)(
      '%s: decoding with the KV cache equals recomputing the whole sequence',
      async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 7));
        const rows = randomRows(c, [9, 5], 4);
        const prompt = rows.map((r) => r.slice(0, r.length - 3));
        const tail = rows.map((r) => r.slice(r.length - 3));
        const full = leftPad(rows, 0);
        await expectNoLeak(async () => {
          const fullHidden = model.forward(full);
          const fullLogits = model.logits(fullHidden);
          const all = await read(fullLogits);
          const cache = new KVCache(2);
          const pre = leftPad(prompt, 0);
          tf.dispose(model.forward(pre, { cache }));
          for (let s = 0; s < 3; s++) {
            const step = leftPad(
              tail.map((t) => [t[s]]),
              0,
            );
            const h = model.forward(step, { cache });
            const lg = model.logits(h);
            const got = await read(lg);
            const V = c.vocabSize;
            for (let b = 0; b < 2; b++) {
              const col = full.length - 3 + s;
              const want = all.subarray(
                (b * full.length + col) * V,
                (b * full.length + col + 1) * V,
              );
              expectClose(got.subarray(b * V, (b + 1) * V), want, {
                atol: 1e-5,
                rtol: 1e-4,
                what: `row ${b} step ${s}`,
              });
            }
            tf.dispose([h, lg]);
          }
          expect(cache.length).toBe(pre.length + 3);
          cache.dispose();
          tf.dispose([fullHidden, fullLogits]);
        });
        model.dispose();
      },
    );

    it('value and score heads: one value per token, a score read at the last real token', async () => {
      const c = TINY.llama;
      const model = CausalLM.fromState(c, randomState(c, 2, ['value_head', 'score']), [
        'value_head',
        'score',
      ]);
      const rows = randomRows(c, [5, 2], 8);
      const batch = rightPad(rows, 0);
      await expectNoLeak(async () => {
        const h = model.forward(batch);
        const values = model.values(h);
        const scores = model.scores(h, batch);
        expect(values.shape).toEqual([2, 5]);
        expect(scores.shape).toEqual([2]);
        const hv = await read(h);
        const w = await read(model.param('score.weight')!);
        const wv = await read(model.param('value_head.weight')!);
        const dot = (row: number, t: number, ww: Float64Array) => {
          let s = 0;
          for (let i = 0; i < c.hidden; i++) s += hv[(row * 5 + t) * c.hidden + i] * ww[i];
          return s;
        };
        expectClose(await read(scores), [dot(0, 4, w), dot(1, 1, w)], {
          what: 'scores at last real token',
        });
        expectClose((await read(values)).subarray(5, 7), [dot(1, 0, wv), dot(1, 1, wv)], {
          what: 'values',
        });
        tf.dispose([h, values, scores]);
      });
      model.dispose();
    });
  });
}

describe('CausalLM errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });
  it('names a missing head, a missing tensor, and a sequence past maxPositions', () => {
    const c = TINY.gpt2;
    const model = CausalLM.init(c, { seed: 1 });
    const h = model.forward(leftPad([[1, 2]], 0));
    expect(() => model.values(h)).toThrow(/no 'value_head' head: create it with CausalLM.init/);
    h.dispose();
    expect(() => model.forward(leftPad([Array(33).fill(1)], 0))).toThrow(
      /position 32 is beyond the model's maxPositions \(32\)/,
    );
    const state = randomState(c, 1);
    state.delete('layers.1.mlp.up.bias');
    expect(() => CausalLM.fromState(c, state)).toThrow(/no tensor 'layers.1.mlp.up.bias'/);
    model.dispose();
  });
});
