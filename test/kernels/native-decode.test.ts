import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { threadBlasThreads, useThreadBlasThreads } from '../../src/kernels/native.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config, llamaConfig } from '../../src/policy/config.js';
import { Lora } from '../../src/policy/lora.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

const FAMILIES = Object.keys(TINY) as (keyof typeof TINY)[];

/**
 * The forwards of one cached generation: a left-padded prefill of 7 (the kernel's sgemm
 * attention), single tokens with one row padding (a stopped row), then chunks of 3 (the
 * per-row loops with several new tokens) and 6 (sgemm attention over a longer past).
 */
function steps(vocab: number): TokenBatch[] {
  const c = { vocabSize: vocab } as (typeof TINY)['gpt2'];
  const chunk = (n: number, seed: number): TokenBatch => leftPad(randomRows(c, [n, n], seed), 0);
  return [
    leftPad(randomRows(c, [7, 3], 5), 0),
    leftPad(randomRows(c, [1, 1], 6), 0),
    { ids: Int32Array.of(4, 0), mask: Uint8Array.of(1, 0), batch: 2, length: 1 },
    chunk(3, 7),
    chunk(6, 8),
  ];
}

/** Every step's logits [B, T, V] through one cache. */
async function decode(model: CausalLM, cache: KVCache, batches: TokenBatch[]) {
  const out: Float64Array[] = [];
  for (const b of batches) {
    const h = model.forward(b, { cache });
    const lg = model.logits(h);
    out.push(await read(lg));
    tf.dispose([h, lg]);
  }
  return out;
}

describe.skipIf(skip !== null)(`native decoder block${skip ? ` (${skip})` : ''}`, () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(FAMILIES)(
        '%s: a cached generation on host buffers equals the tensor cache (prefill, padding, chunks, growth)',
        async (family) => {
          const c = TINY[family];
          const model = CausalLM.fromState(c, randomState(c, 21));
          const batches = steps(c.vocabSize);
          await expectNoLeak(async () => {
            // capacity 2: the host store doubles (copying what it holds) several times
            const host = new KVCache(2, { capacity: 2 });
            const tensors = new KVCache(2, { store: 'tensors' });
            const got = await decode(model, host, batches);
            const want = await decode(model, tensors, batches);
            expect(host.kind).toBe('host');
            expect(tensors.kind).toBe('tensors');
            expect(host.length).toBe(tensors.length);
            expect([...host.seen]).toEqual([...tensors.seen]);
            got.forEach((g, i) => {
              expectClose(g, want[i], { atol: 1e-5, rtol: 1e-4, what: `${family} forward ${i}` });
            });
            host.dispose();
            tensors.dispose();
          });
          model.dispose();
        },
      );

      it.each([
        [
          'gpt2, heads of 32',
          gpt2Config({ vocabSize: 37, hidden: 128, layers: 2, heads: 4, maxPositions: 128 }),
          70,
        ],
        [
          'llama, heads of 64',
          llamaConfig({
            ...{ vocabSize: 37, hidden: 128, layers: 1, heads: 2, kvHeads: 1 },
            ...{ intermediate: 96, maxPositions: 128 },
          }),
          70,
        ],
      ] as const)(
        '%s: decoding 16 rows (values weighed in registers) equals the tensor cache, and its attention split across 2 threads equals 1 bit for bit',
        async (_name, c, length) => {
          const model = CausalLM.init(c, { seed: 9 });
          // 16 rows: the projections take the small-M product, whose bits do not depend on the
          // threads; attention has rows·heads·keys·hd ≥ 2·2^16 multiply-adds, so it is split in two.
          const B = 16;
          const lengths = Array.from({ length: B }, (_, b) => length - (b % 5));
          const prefill = leftPad(randomRows(c, lengths, 11), 0);
          const tokens = Array.from({ length: 4 }, (_, t): TokenBatch => {
            const ids = Int32Array.from(randomRows(c, Array(B).fill(1), 12 + t).flat());
            return { ids, mask: new Uint8Array(B).fill(1), batch: B, length: 1 };
          });
          const before = threadBlasThreads() ?? 1;
          try {
            useThreadBlasThreads(1);
            const one = new KVCache(B);
            const tensors = new KVCache(B, { store: 'tensors' });
            await decode(model, one, [prefill]);
            await decode(model, tensors, [prefill]);
            const two = one.expand(Array.from(lengths.keys())); // the same prefill, copied
            const want = await decode(model, tensors, tokens);
            const got = await decode(model, one, tokens);
            useThreadBlasThreads(2);
            const split = await decode(model, two, tokens);
            got.forEach((g, i) => {
              expect(split[i], `step ${i}: 2 threads`).toEqual(g);
              expectClose(g, want[i], { atol: 1e-5, rtol: 1e-4, what: `step ${i}` });
            });
            for (const k of [one, two, tensors]) k.dispose();
          } finally {
            useThreadBlasThreads(before);
          }
          model.dispose();
        },
      );

      it("a disposed cache's host buffers go to the next cache of their size; their old values (NaN here) change no bit", async () => {
        const c = TINY.gpt2;
        const model = CausalLM.fromState(c, randomState(c, 23));
        const batches = steps(c.vocabSize); // 18 positions: no growth at capacity 32
        const others = steps(c.vocabSize).map((b) => ({
          ...b,
          ids: b.ids.map((i) => (i * 7 + 3) % c.vocabSize),
        }));
        const buffers = (k: KVCache) =>
          Array.from({ length: c.layers }, (_, l) => k.hostLayer(l, c.kvHeads, c.headDim, 0));
        const first = new KVCache(2, { capacity: 32 });
        const want = await decode(model, first, batches);
        const held = buffers(first);
        first.dispose();
        const other = new KVCache(2, { capacity: 32 });
        await decode(model, other, others);
        // buffers of one length are interchangeable: the set is the disposed cache's
        const heldSet = new Set(held.flatMap((h) => [h.k, h.v]));
        const reused = buffers(other);
        for (const [l, h] of reused.entries()) {
          expect(heldSet.has(h.k) && heldSet.has(h.v), `layer ${l}: a disposed cache's`).toBe(true);
          h.k.fill(Number.NaN); // what a read of a position not written this time would see
          h.v.fill(Number.NaN);
        }
        other.dispose();
        const again = new KVCache(2, { capacity: 32 });
        const got = await decode(model, again, batches);
        expect(heldSet.has(buffers(again)[0].k)).toBe(true);
        for (const [i, g] of got.entries()) expect(g, `forward ${i}`).toEqual(want[i]);
        again.dispose();
        model.dispose();
      });

      it('a new cache picks the host store, and tensors for a LoRA model', async () => {
        const c = TINY.llama;
        const model = CausalLM.fromState(c, randomState(c, 3));
        const plain = new KVCache(1);
        tf.dispose(model.forward(leftPad([[1, 2]], 0), { cache: plain }));
        expect(plain.kind).toBe('host');
        plain.dispose();
        new Lora(model, { rank: 2, alpha: 4, dropout: 0, targetModules: ['q', 'v'] }, { seed: 1 });
        const lora = new KVCache(1);
        tf.dispose(model.forward(leftPad([[1, 2]], 0), { cache: lora }));
        expect(lora.kind).toBe('tensors');
        lora.dispose();
        const forced = new KVCache(1, { store: 'host' });
        expect(() => model.forward(leftPad([[1, 2]], 0), { cache: forced })).toThrow(
          /host buffers.*no LoRA/,
        );
        model.dispose();
      });
    });
  }

  it('decodeBlock names the argument it rejects', () => {
    const a = native.available ? native.addon : undefined;
    if (!a) return;
    const [B, T, d, H, KV, hd, I] = [1, 1, 8, 2, 2, 4, 16];
    const f = (n: number) => new Float32Array(n);
    const params = [
      d,
      d,
      d * d,
      0,
      d * d,
      0,
      d * d,
      0,
      d * d,
      0,
      d,
      d,
      0,
      0,
      d * I,
      0,
      I * d,
      0,
      0,
      0,
      0,
      0,
    ].map(f);
    const dims = (past: number, cap: number, extra = [0, 0, hd, 0, 0]) =>
      Int32Array.of(B, T, d, H, KV, hd, I, past, cap, ...extra);
    const floats = Float64Array.of(1e-5, 0.5, 0);
    const call = (p: Float32Array[], dm = dims(0, 4), fl = floats) =>
      a.decodeBlock(dm, fl, f(d), p, f(0), f(0), f(1), f(KV * 4 * hd), f(KV * 4 * hd), f(d));
    expect(() => call(params)).not.toThrow();
    const shortQ = params.map((p, i) => (i === 2 ? f(d * d - 1) : p));
    expect(() => call(shortQ)).toThrow(/attn\.q\.weight has 63 elements, needs 64/);
    const noNormBias = params.map((p, i) => (i === 1 ? f(0) : p));
    expect(() => call(noNormBias)).toThrow(/attn_norm\.bias is required/);
    expect(() => call(params, dims(4, 4))).toThrow(/dims past \+ new tokens exceed the cache/);
    expect(() => call(params.slice(0, 17))).toThrow(/mlp\.down\.bias must be a Float32Array/);
    // q/k norms and sandwich norms need their gains, and RMSNorm
    expect(() => call(params, dims(0, 4, [1, 0, hd, 1, 0]))).toThrow(
      /attn\.q_norm\.weight is required/,
    );
    expect(() => call(params, dims(0, 4, [0, 0, hd, 1, 0]))).toThrow(/need RMSNorm/);
    expect(() => call(params, dims(0, 4, [1, 0, 3, 0, 0]))).toThrow(/rot must be even/);
    expect(() => call(params, dims(0, 4), Float64Array.of(1e-5, 0.5, -1))).toThrow(
      /floats needs eps > 0, scale > 0 and a soft-cap ≥ 0/,
    );
    expect(() => call(params, dims(0, 4), Float64Array.of(1e-5, 0.5))).toThrow(/floats has 2/);
    // a capacity the caches do not have
    const roomy = Int32Array.of(B, T, d, H, KV, hd, I, 0, 2 ** 31 - 1, 0, 0, hd, 0, 0);
    expect(() => call(params, roomy)).toThrow(/cacheK has 32 elements, needs 17179869176/);
  });
});
