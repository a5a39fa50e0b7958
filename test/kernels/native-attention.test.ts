import { beforeAll, describe, expect, it } from 'vitest';
import {
  ATTN_SCORES,
  ATTN_VALUES,
  attentionInPlace,
  attnScores,
  attnValues,
} from '../../src/kernels/custom/native-attention.js';
import { withPrecision } from '../../src/kernels/precision.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { attention } from '../../src/policy/model/layers.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';

const rng = (purpose: string) => RandomStream.of({ seed: 6, step: 0, actor: 'test', purpose });
const bits = (t: tf.Tensor) => [...new Uint32Array((t.dataSync() as Float32Array).slice().buffer)];

/** Runs f with the in-place kernels unregistered: attention splits and merges the heads. */
function withTransposes<T>(backend: string, f: () => T): T {
  const saved = [ATTN_SCORES, ATTN_VALUES].map((k) => tf.getKernel(k, backend)!);
  for (const k of saved) tf.unregisterKernel(k.kernelName, backend);
  try {
    return f();
  } finally {
    for (const k of saved) tf.registerKernel(k);
  }
}

/** The causal bias [B, 1, 1, T, S] of T queries after S − T cached keys (0 or −1e9). */
function causal(B: number, T: number, S: number): tf.Tensor {
  const b = new Float32Array(B * T * S);
  for (let r = 0; r < B; r++)
    for (let t = 0; t < T; t++)
      for (let s = 0; s < S; s++) b[(r * T + t) * S + s] = s <= S - T + t ? 0 : -1e9;
  return tf.tensor(b, [B, 1, 1, T, S]);
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe.skipIf(skip !== null)(
    `attention with the heads in place on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it('is used for one key/value head per query head past 16 queries and keys, fp32 and bf16', () => {
        const q = (T: number, H: number) => tf.zeros([1, T, H, 8]);
        const k = (KV: number, S: number) => tf.zeros([1, KV, S, 8]);
        const cases: [tf.Tensor, tf.Tensor, boolean][] = [
          [q(17, 2), k(2, 17), true],
          [q(16, 2), k(2, 40), false], // 16 queries: the small-M product
          [q(32, 2), k(2, 16), false],
          [q(32, 4), k(2, 32), false], // grouped-query heads
        ];
        for (const [qt, kt, want] of cases) expect(attentionInPlace(qt, kt)).toBe(want);
        // bf16 products run on the addon's bf16GemmStrided (an addon without it: transposes)
        const bf16 = native.available && typeof native.addon.bf16GemmStrided === 'function';
        expect(withPrecision('bf16', () => attentionInPlace(q(40, 2), k(2, 40)))).toBe(bf16);
        tf.dispose(cases.map(([a, b]) => [a, b]));
      });

      it.each([
        ['odd sizes', 2, 17, 3, 5, 20, {}],
        ['the bench update, 32 queries after 32 cached keys', 4, 32, 4, 32, 64, {}],
        ['a soft-cap and a dropout mask', 2, 24, 2, 8, 24, { softcap: 30, dropout: true }],
      ] as [
        string,
        number,
        number,
        number,
        number,
        number,
        { softcap?: number; dropout?: boolean },
      ][])(
        '%s: the output and every gradient equal the transposed path bit for bit',
        async (_, B, T, H, hd, S, o) => {
          await expectNoLeak(() => {
            const q = tf.tensor(rng(`q${T}`).normal(B * T * H * hd), [B, T, H, hd]);
            const k = tf.tensor(rng(`k${S}`).normal(B * H * S * hd), [B, H, S, hd]);
            const v = tf.tensor(rng(`v${S}`).normal(B * H * S * hd), [B, H, S, hd]);
            const w = tf.tensor(rng(`w${T}`).normal(B * T * H * hd), [B, T, H * hd]);
            const bias = causal(B, T, S);
            const mask = o.dropout
              ? tf.tensor(
                  Float32Array.from(rng('m').uniform(B * H * T * S), (u) => (u < 0.2 ? 0 : 1.25)),
                  [B, H, T, S],
                )
              : undefined;
            const opts = { scale: 0.3, softcap: o.softcap, dropoutMask: mask };
            expect(attentionInPlace(q, k)).toBe(true);
            const f = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
              tf.sum(tf.mul(attention(qq, kk, vv, bias, opts), w));
            const run = () => {
              const y = tf.tidy(() => attention(q, k, v, bias, opts));
              const g = tf.grads(f)([q, k, v]);
              return [y, ...g];
            };
            const got = run();
            const want = withTransposes(backend, run);
            expect(got[0].shape).toEqual([B, T, H * hd]);
            for (let i = 0; i < got.length; i++) {
              expect(got[i].shape).toEqual(want[i].shape);
              expect(bits(got[i])).toEqual(bits(want[i]));
            }
            tf.dispose([q, k, v, w, bias, ...(mask ? [mask] : []), ...got, ...want]);
          });
        },
      );

      it.each([
        ['40 queries and keys: every product bf16', 2, 40, 3, 16, 40],
        ['40 queries after 24 keys: dk and dv (24 rows) fp32, the rest bf16', 2, 40, 2, 8, 24],
        ['the small model, 128 and 6 heads of 64', 1, 128, 6, 64, 128],
      ] as [string, number, number, number, number, number][])(
        'bf16, %s: the output and every gradient equal the transposed bf16 path bit for bit',
        async (_, B, T, H, hd, S) => {
          await expectNoLeak(() => {
            const q = tf.tensor(rng(`bq${T}`).normal(B * T * H * hd), [B, T, H, hd]);
            const k = tf.tensor(rng(`bk${S}`).normal(B * H * S * hd), [B, H, S, hd]);
            const v = tf.tensor(rng(`bv${S}`).normal(B * H * S * hd), [B, H, S, hd]);
            const w = tf.tensor(rng(`bw${T}`).normal(B * T * H * hd), [B, T, H * hd]);
            const bias = causal(B, T, S);
            const f = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
              tf.sum(tf.mul(attention(qq, kk, vv, bias, { scale: 0.3 }), w));
            const run = () =>
              withPrecision('bf16', () => {
                const y = tf.tidy(() => attention(q, k, v, bias, { scale: 0.3 }));
                return [y, ...tf.grads(f)([q, k, v])];
              });
            expect(withPrecision('bf16', () => attentionInPlace(q, k))).toBe(true);
            const got = run();
            const want = withTransposes(backend, run);
            const fp32 = tf.tidy(() => attention(q, k, v, bias, { scale: 0.3 }));
            for (let i = 0; i < got.length; i++) {
              expect(got[i].shape).toEqual(want[i].shape);
              expect(bits(got[i])).toEqual(bits(want[i]));
            }
            // and it is bf16: the fp32 products give other bits
            expect(bits(fp32)).not.toEqual(bits(got[0]));
            tf.dispose([q, k, v, w, bias, fp32, ...got, ...want]);
          });
        },
      );

      it('the two products equal float64 loops', () => {
        const [B, T, H, hd, S] = [2, 18, 3, 4, 19];
        const qs = rng('lq').normal(B * T * H * hd);
        const ks = rng('lk').normal(B * H * S * hd);
        const ps = rng('lp').normal(B * H * T * S);
        const q = tf.tensor(qs, [B, T, H, hd]);
        const k = tf.tensor(ks, [B, H, S, hd]);
        const p = tf.tensor(ps, [B, H, T, S]);
        const sc = attnScores(q, k).dataSync();
        const out = attnValues(p, k).dataSync(); // k as the values
        const close = (a: number, e: number) =>
          expect(Math.abs(a - e)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(e)));
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++)
            for (let t = 0; t < T; t++) {
              for (let s = 0; s < S; s++) {
                let e = 0;
                for (let j = 0; j < hd; j++)
                  e += qs[((b * T + t) * H + h) * hd + j] * ks[((b * H + h) * S + s) * hd + j];
                close(sc[((b * H + h) * T + t) * S + s], e);
              }
              for (let j = 0; j < hd; j++) {
                let e = 0;
                for (let s = 0; s < S; s++)
                  e += ps[((b * H + h) * T + t) * S + s] * ks[((b * H + h) * S + s) * hd + j];
                close(out[((b * T + t) * H + h) * hd + j], e);
              }
            }
        tf.dispose([q, k, p]);
      });

      it('names inputs that do not fit', () => {
        const q = tf.zeros([2, 20, 3, 4]);
        expect(() => attnScores(q, tf.zeros([2, 2, 20, 4]))).toThrow(
          /TroupeAttnScores: q \[B, T, H, hd\] and k \[B, H, S, hd\] do not fit/,
        );
        expect(() => attnValues(tf.zeros([2, 3, 20, 21]), tf.zeros([2, 3, 20, 4]))).toThrow(
          /TroupeAttnValues: p \[B, H, T, S\] and v \[B, H, S, hd\] do not fit/,
        );
        q.dispose();
      });
    },
  );
}

describe.skipIf(skip !== null)('gemmStrided', () => {
  const addon = () => {
    if (!native.available) throw new Error(native.reason);
    return native.addon as unknown as {
      threads(): number;
      setThreads(n: number): void;
      gemmStrided(...args: (boolean | Int32Array | Float32Array)[]): void;
    };
  };

  it('refuses 16 rows or fewer (the small-M product sums otherwise) and views too short', () => {
    const a = addon();
    const x = new Float32Array(64 * 64);
    const l = Int32Array.from([0, 0, 8]);
    expect(() =>
      a.gemmStrided(
        false,
        false,
        Int32Array.from([1, 1, 16, 8, 8]),
        x,
        l,
        x.slice(),
        l,
        new Float32Array(256),
        l,
      ),
    ).toThrow(/dims must be positive, with M > 16/);
    expect(() =>
      a.gemmStrided(
        false,
        false,
        Int32Array.from([1, 1, 17, 8, 8]),
        x.subarray(0, 100),
        l,
        x.slice(),
        l,
        new Float32Array(17 * 8),
        l,
      ),
    ).toThrow(/a has 100 elements, needs 136/);
  });

  it('1 and 2 threads give the same bits', () => {
    const a = addon();
    const saved = a.threads();
    const [B, H, T, S, hd] = [8, 4, 32, 48, 32]; // 32 products of 49k multiply-adds: shared out
    const q = rng('tq').normal(B * T * H * hd);
    const k = rng('tk').normal(B * H * S * hd);
    const run = () => {
      const c = new Float32Array(B * H * T * S).fill(Number.NaN);
      a.gemmStrided(
        false,
        true,
        Int32Array.from([B, H, T, S, hd]),
        q,
        Int32Array.from([T * H * hd, hd, H * hd]),
        k,
        Int32Array.from([H * S * hd, S * hd, hd]),
        c,
        Int32Array.from([H * T * S, T * S, S]),
      );
      return c;
    };
    try {
      a.setThreads(1);
      const one = run();
      a.setThreads(2);
      const two = run();
      expect(one.some(Number.isNaN)).toBe(false);
      expect([...new Uint32Array(two.buffer)]).toEqual([...new Uint32Array(one.buffer)]);
    } finally {
      a.setThreads(saved);
    }
  });
});
