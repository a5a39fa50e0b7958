import { beforeAll, describe, expect, it } from 'vitest';
import type { TokenBatch } from '../../src/data/batching/collate.js';
import { KV_EXPAND, KV_EXPAND_GRAD } from '../../src/kernels/custom/native-kv.js';
import { withPrecision } from '../../src/kernels/precision.js';
import * as tf from '../../src/kernels/tf.js';
import { holdBf16 } from '../../src/policy/bf16.js';
import { gpt2Config, llamaConfig } from '../../src/policy/config.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import {
  prefixGroups,
  sharedPrefixHidden,
  targetLogProbs,
} from '../../src/policy/target-logprobs.js';
import { BACKEND_CASES, expectNoLeak, useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';
import { expectRowsEqual, rowsIndependent } from '../helpers/row-order.js';
import { randomRows, randomState } from './fixtures.js';

/** Tiny models with room for the ≥ 32-token prompts and responses sharing needs. */
const MODELS = {
  gpt2: gpt2Config({ vocabSize: 23, hidden: 16, layers: 2, heads: 4, maxPositions: 96 }),
  llama: llamaConfig({
    vocabSize: 19,
    hidden: 16,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 24,
    maxPositions: 96,
  }),
};

/*
 * Scoring rollouts whose prompts repeat (GRPO's n samples of a prompt) with each distinct prompt
 * run once (`targetLogProbs` with `sharePrefix`): the same log-probs and entropies as the full
 * forward, bit for bit, for left-padded prompts of different lengths and right-padded responses
 * (where this machine's products sum each row independently of its neighbours: helpers/row-order).
 */

/**
 * A rollout batch: each prompt `n` times, left-padded to the longest prompt P, then a response
 * of up to A tokens (right-padded: row r stops after A − (r mod 3) tokens), as the rollout
 * layout has it. Returns the batch and P.
 */
function rollouts(prompts: number[][], n: number, responses: number[][], A: number) {
  const P = Math.max(...prompts.map((p) => p.length));
  const rows = prompts.flatMap((p) => Array<number[]>(n).fill(p));
  const T = P + A;
  const ids = new Int32Array(rows.length * T);
  const mask = new Uint8Array(rows.length * T);
  rows.forEach((p, r) => {
    const at = r * T + P - p.length;
    ids.set(p, at);
    mask.fill(1, at, r * T + P);
    const live = A - (r % 3);
    ids.set(responses[r].slice(0, live), r * T + P);
    mask.fill(1, r * T + P, r * T + P + live);
  });
  return { batch: { ids, mask, batch: rows.length, length: T } as TokenBatch, P };
}

/**
 * targetLogProbs of `batch` (log-probs and entropies), shared and full: [[lp, H], [lp, H]].
 * Synchronous, so that a caller's withPrecision holds for both.
 */
function bothWays(model: CausalLM, batch: TokenBatch, P: number): Float32Array[][] {
  const run = (sharePrefix: boolean) => {
    const [logp, entropy] = tf.tidy(() => {
      const o = targetLogProbs(model, batch, { start: P, entropy: true, sharePrefix });
      return [o.logp, o.entropy!];
    });
    const out = [logp.dataSync() as Float32Array, entropy.dataSync() as Float32Array];
    tf.dispose([logp, entropy]);
    return out;
  };
  return [run(true), run(false)];
}

describe('prefixGroups', () => {
  it('groups rows by their first `start` ids and mask, in order of appearance', () => {
    const batch: TokenBatch = {
      ids: Int32Array.from([5, 6, 9, 5, 6, 8, 0, 6, 7, 5, 6, 1]),
      mask: Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]),
      batch: 4,
      length: 3,
    };
    const { first, index } = prefixGroups(batch, 2);
    expect([...first]).toEqual([0, 2]); // rows 0, 1, 3 share [5, 6]; row 2 is [pad, 6]
    expect([...index]).toEqual([0, 0, 1, 0]);
  });
});

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `shared-prefix scoring on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(['gpt2', 'llama'] as const)(
        `%s: log-probs and entropies equal the full forward ${rowsIndependent ? 'bit for bit' : 'to float32 rounding (rows not independent in this BLAS)'}`,
        async (family) => {
          const c = MODELS[family];
          const model = CausalLM.fromState(c, randomState(c, 11));
          const A = 33;
          const prompts = randomRows(c, [34, 40, 29], 5); // P 40: every row's prompt past 32 columns
          const { batch, P } = rollouts(prompts, 4, randomRows(c, Array(12).fill(A), 6), A);
          const rowsRun: number[] = [];
          const forward = model.forward.bind(model);
          model.forward = (b, opts) => {
            rowsRun.push(b.batch);
            return forward(b, opts);
          };
          const run = async (sharePrefix: boolean) => {
            const [logp, entropy] = tf.tidy(() => {
              const o = targetLogProbs(model, batch, { start: P, entropy: true, sharePrefix });
              return [o.logp, o.entropy!];
            });
            const out = [await logp.data(), await entropy.data()];
            tf.dispose([logp, entropy]);
            return out;
          };
          await run(false); // the model's lazily made tensors exist from here on
          await run(true);
          rowsRun.length = 0;
          const score = (sharePrefix: boolean) => expectNoLeak(() => run(sharePrefix));
          const [lpFull, hFull] = await score(false);
          expect(rowsRun).toEqual([12]);
          rowsRun.length = 0;
          const [lpShared, hShared] = await score(true);
          expect(rowsRun).toEqual([3, 12]); // 3 distinct prompts once, then the 12 rows' continuation
          expectRowsEqual(lpShared, lpFull, 'log-probs');
          expectRowsEqual(hShared, hFull, 'entropies');
          // the chunked head (no entropy) scores the same rows
          const plain = (sharePrefix: boolean) =>
            expectNoLeak(async () => {
              const logp = tf.tidy(
                () => targetLogProbs(model, batch, { start: P, sharePrefix }).logp,
              );
              const v = await logp.data();
              logp.dispose();
              return v;
            });
          expectRowsEqual(await plain(true), await plain(false), 'chunked head');
          model.dispose();
        },
      );

      it.skipIf(nativeSkip !== null || backend === 'webgpu')(
        'llama with bf16-held weights under precision bf16 (a bf16 reference): the same bits',
        async () => {
          const c = MODELS.llama;
          const model = CausalLM.fromState(c, randomState(c, 13));
          await holdBf16(model);
          const A = 32;
          const { batch, P } = rollouts(
            randomRows(c, [32, 36], 7),
            3,
            randomRows(c, Array(6).fill(A), 8),
            A,
          );
          const [[lp, H], [lpFull, hFull]] = await withPrecision('bf16', () =>
            bothWays(model, batch, P),
          );
          expect(lp).toEqual(lpFull);
          expect(H).toEqual(hFull);
          // the bf16 products ran (x rounded from 32 rows: not the fp32 precision's numbers)
          expect(bothWays(model, batch, P)[0][0]).not.toEqual(lp);
          model.dispose();
        },
      );

      it.each(['gpt2', 'llama'] as const)(
        '%s: under a gradient, the loss and every gradient equal the full forward’s to float32 rounding',
        async (family) => {
          const c = MODELS[family];
          const model = CausalLM.fromState(c, randomState(c, 14));
          const A = 33;
          const { batch, P } = rollouts(
            randomRows(c, [36, 34], 7),
            4,
            randomRows(c, Array(8).fill(A), 8),
            A,
          );
          const vars = [...model.params.values()];
          const weights = tf.linspace(-1, 1, A);
          const step = (sharePrefix: boolean) =>
            expectNoLeak(async () => {
              const { value, grads } = tf.variableGrads(() => {
                const { logp } = targetLogProbs(model, batch, {
                  start: P,
                  sharePrefix,
                  entropy: 'metric',
                });
                return tf.sum(tf.mul(logp, weights)) as tf.Scalar;
              }, vars);
              const g: Float32Array[] = [];
              for (const v of vars) g.push((await grads[v.name].data()) as Float32Array);
              const loss = (await value.data())[0];
              tf.dispose([value, ...Object.values(grads)]);
              return { loss, g };
            });
          await step(false); // lazily made tensors
          await step(true);
          const shared = await step(true);
          const full = await step(false);
          expect(Math.abs(shared.loss - full.loss)).toBeLessThan(1e-5 * Math.abs(full.loss));
          let top = 0;
          let worst = 0;
          for (const [i, g] of full.g.entries()) {
            for (const [j, x] of g.entries()) {
              top = Math.max(top, Math.abs(x));
              worst = Math.max(worst, Math.abs(x - shared.g[i][j]));
            }
          }
          expect(top).toBeGreaterThan(0.1);
          expect(worst).toBeLessThan(3e-5 * top); // float32 sums of ~300 rows in another order
          weights.dispose();
          model.dispose();
        },
      );

      it.skipIf(backend === 'webgpu' || nativeSkip !== null).each(['gpt2', 'llama'] as const)(
        '%s: the shared update with the native KV expansion: the same loss and gradients, bit for bit, as with tfjs’ gather, transpose and concat',
        async (family) => {
          const c = MODELS[family];
          const model = CausalLM.fromState(c, randomState(c, 15));
          const A = 33;
          const { batch, P } = rollouts(
            randomRows(c, [35, 33], 3),
            3,
            randomRows(c, Array(6).fill(A), 4),
            A,
          );
          const vars = [...model.params.values()];
          const weights = tf.linspace(-1, 1, A);
          const step = () =>
            expectNoLeak(async () => {
              const { value, grads } = tf.variableGrads(() => {
                const { logp } = targetLogProbs(model, batch, {
                  start: P,
                  sharePrefix: true,
                  entropy: 'metric',
                });
                return tf.sum(tf.mul(logp, weights)) as tf.Scalar;
              }, vars);
              const g: Uint32Array[] = [];
              for (const v of vars) {
                g.push(new Uint32Array(((await grads[v.name].data()) as Float32Array).buffer));
              }
              const loss = (await value.data())[0];
              tf.dispose([value, ...Object.values(grads)]);
              return { loss, g };
            });
          expect(tf.getKernel(KV_EXPAND, backend)).toBeDefined();
          const fused = await step();
          const saved = [KV_EXPAND, KV_EXPAND_GRAD].map((k) => tf.getKernel(k, backend)!);
          for (const k of saved) tf.unregisterKernel(k.kernelName, backend);
          let stock: Awaited<ReturnType<typeof step>>;
          try {
            stock = await step();
          } finally {
            for (const k of saved) tf.registerKernel(k);
          }
          expect(fused.loss).toBe(stock.loss);
          for (const [i, g] of stock.g.entries()) {
            expect(g.some((x) => x !== 0)).toBe(true);
            expect([...fused.g[i]]).toEqual([...g]);
          }
          weights.dispose();
          model.dispose();
        },
      );

      it('leaves short prefixes or continuations, and batches with no repeated prefix, to the full forward', () => {
        const c = MODELS.gpt2;
        const model = CausalLM.fromState(c, randomState(c, 12));
        const rows = (n: number) => Array<number>(n * 3).fill(0);
        const distinct = rollouts(
          randomRows(c, [33, 34, 35], 8),
          1,
          randomRows(c, rows(1).fill(32), 9),
          32,
        );
        expect(sharedPrefixHidden(model, distinct.batch, distinct.P)).toBeNull();
        const short = rollouts(
          randomRows(c, [31, 31], 10),
          3,
          randomRows(c, rows(2).fill(32), 11),
          32,
        );
        expect(sharedPrefixHidden(model, short.batch, short.P)).toBeNull(); // prefix of 31
        const brief = rollouts(
          randomRows(c, [40, 40], 10),
          3,
          randomRows(c, rows(2).fill(31), 11),
          31,
        );
        expect(sharedPrefixHidden(model, brief.batch, brief.P)).toBeNull(); // 31 columns after it
        model.dispose();
      });
    },
  );
}
