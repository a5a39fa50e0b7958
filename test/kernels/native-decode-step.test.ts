import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config, type ModelConfig, validateConfig } from '../../src/policy/config.js';
import { generate } from '../../src/policy/generate.js';
import { Lora } from '../../src/policy/lora.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { expectClose, expectNoLeak, useBackend } from '../helpers/backends.js';
import { native, nativeSkip as skip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

/**
 * CausalLM.decodeStep (native/decode.c decodeStep: a whole decode step in one call) against the
 * path it replaces, forward through the host cache then the LM head, bit for bit; and against
 * the tensor cache (tfjs' own kernels, an independent computation) to float32 rounding.
 */

/** Single-token steps after a prefill: a stopped row (mask 0, padding fed), then live rows. */
function tokenSteps(c: ModelConfig, B: number, n: number, seed: number): TokenBatch[] {
  const r = RandomStream.of({ seed, step: 0, actor: 'test', purpose: 'steps' });
  return Array.from({ length: n }, (_, t) => {
    const mask = Uint8Array.from({ length: B }, (_, b) => (b === 1 && t >= 2 ? 0 : 1));
    const ids = Int32Array.from({ length: B }, (_, b) => (mask[b] ? r.nextInt(c.vocabSize) : 0));
    return { ids, mask, batch: B, length: 1 };
  });
}

/** The logits [B·V] of forward + logits through `cache` (the path decodeStep replaces). */
async function viaForward(model: CausalLM, step: TokenBatch, cache: KVCache) {
  const h = model.forward(step, { cache });
  const z = model.logits(h);
  const out = (await z.data()) as Float32Array;
  tf.dispose([h, z]);
  return out;
}

/** Prefill the same prompts into each cache (the native decoder block's prefill). */
async function prefill(model: CausalLM, prompts: number[][], ...caches: KVCache[]) {
  for (const cache of caches) await viaForward(model, leftPad(prompts, 0), cache);
}

const untied = validateConfig({
  ...gpt2Config({ vocabSize: 29, hidden: 16, layers: 2, heads: 4, maxPositions: 32 }),
  tieEmbeddings: false,
});
const scaled = validateConfig({ ...TINY.gpt2, embedScale: 4 });
const phi3Full = validateConfig({ ...TINY.phi3, slidingWindow: undefined });
/** The GRPO bench job's widths (d 128, 4 heads of 32, V 512), 20 rows: past the seqgemm's 16. */
const grpoLike = gpt2Config({ vocabSize: 512, hidden: 128, layers: 2, heads: 4, maxPositions: 64 });

describe.skipIf(skip !== null)(`native decode step${skip ? ` (${skip})` : ''}`, () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each([
        ['gpt2 tied', TINY.gpt2, 3, 1e-5],
        ['gpt2 untied head', untied, 3, 1e-5],
        ['gpt2 embedScale 4', scaled, 3, 1e-5],
        // sums over 128 and 512 terms: tfjs' kernels round apart by ~1e-5 absolute here
        ['GRPO widths, 20 rows', grpoLike, 20, 5e-5],
        // RoPE: the step's tables passed (grouped heads, biases, q/k norms, partial rotary, scalings)
        ['llama', TINY.llama, 3, 1e-5],
        ['qwen2', TINY.qwen2, 3, 1e-5],
        ['qwen3', TINY.qwen3, 3, 1e-5],
        ['phi3 (partial rotary) without its window', phi3Full, 3, 1e-5],
        ['llama3 rope', TINY.llama3rope, 3, 1e-5],
        ['yarn', TINY.yarn, 3, 1e-5],
        ['dynamic NTK', TINY.dynamic, 3, 1e-5],
      ] as const)(
        '%s: each step the bits of forward + logits, close to the tensor cache',
        async (_, c, B, atol) => {
          const model = CausalLM.fromState(c, randomState(c, 11));
          const prompts = randomRows(
            c,
            Array.from({ length: B }, (_, b) => 2 + (b % 4)),
            12,
          );
          await expectNoLeak(async () => {
            // capacity 6: the host store doubles during the steps (growth inside decodeStep)
            const fast = new KVCache(B, { capacity: 6 });
            const slow = new KVCache(B, { capacity: 6 });
            const tensors = new KVCache(B, { store: 'tensors' });
            await prefill(model, prompts, fast, slow, tensors);
            for (const [i, step] of tokenSteps(c, B, 6, 13).entries()) {
              const got = model.decodeStep(step, fast);
              expect(got, `step ${i} ran natively`).toBeInstanceOf(Float32Array);
              const want = await viaForward(model, step, slow);
              expect(Buffer.from(got!.buffer).equals(Buffer.from(want.buffer)), `step ${i}`).toBe(
                true,
              );
              const ref = await viaForward(model, step, tensors);
              expectClose(got!, ref, { atol, rtol: 1e-4, what: `step ${i} vs tensors` });
              expect(fast.length).toBe(slow.length);
              expect([...fast.seen]).toEqual([...slow.seen]);
            }
            for (const k of [fast, slow, tensors]) k.dispose();
          });
          model.dispose();
        },
      );

      it('a parameter assigned between steps, and (wasm) a grown heap, are read afresh', async () => {
        const c = TINY.gpt2;
        const model = CausalLM.fromState(c, randomState(c, 5));
        const prompts = randomRows(c, [3, 2], 6);
        const fast = new KVCache(2, { capacity: 16 });
        const slow = new KVCache(2, { capacity: 16 });
        await prefill(model, prompts, fast, slow);
        const steps = tokenSteps(c, 2, 3, 7);
        // `out`: the logits land in the caller's buffer, which is returned
        const buffer = new Float32Array(2 * c.vocabSize).fill(Number.NaN);
        expect(() => model.decodeStep(steps[0], fast, new Float32Array(3))).toThrow(
          /'out' holds 3 floats/,
        );
        expect(fast.length).toBe(slow.length);
        const same = async (i: number) => {
          const got = model.decodeStep(steps[i], fast, buffer)!;
          expect(got).toBe(buffer);
          const want = await viaForward(model, steps[i], slow);
          expect([...got], `step ${i}`).toEqual([...want]);
        };
        await same(0);
        // a variable's new value lives in new storage (a new dataId)
        const w = model.param('layers.1.mlp.up.weight')!;
        w.assign(tf.mul(w, 1.5));
        await same(1);
        const held: tf.Tensor[] = [];
        if (backend === 'wasm') {
          const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm;
          const before = heap().HEAPU8.buffer;
          while (heap().HEAPU8.buffer === before && held.length < 64)
            held.push(tf.zeros([2 ** 21])); // 8 MB each, until the heap grows
          expect(heap().HEAPU8.buffer).not.toBe(before);
        }
        await same(2);
        tf.dispose(held);
        fast.dispose();
        slow.dispose();
        model.dispose();
      });

      it('does nothing where it does not apply: sliding windows, a final soft-cap, LoRA, a tensor cache, T > 1, before a prefill', async () => {
        const c = TINY.gpt2;
        const model = CausalLM.fromState(c, randomState(c, 8));
        const step: TokenBatch = {
          ids: Int32Array.of(1),
          mask: Uint8Array.of(1),
          batch: 1,
          length: 1,
        };
        const empty = new KVCache(1);
        expect(model.decodeStep(step, empty)).toBeUndefined();
        expect(empty.length).toBe(0);
        const tensors = new KVCache(1, { store: 'tensors' });
        await prefill(model, [[1, 2]], tensors);
        expect(model.decodeStep(step, tensors)).toBeUndefined();
        expect(tensors.length).toBe(2);
        const host = new KVCache(1);
        await prefill(model, [[1, 2]], host);
        const two: TokenBatch = {
          ids: Int32Array.of(1, 2),
          mask: Uint8Array.of(1, 1),
          batch: 1,
          length: 2,
        };
        expect(model.decodeStep(two, host)).toBeUndefined();
        expect(host.length).toBe(2);
        // LoRA: the forward's own projection (a tensor cache from then on)
        new Lora(model, { rank: 2, alpha: 4, dropout: 0, targetModules: ['q', 'v'] }, { seed: 1 });
        expect(model.decodeStep(step, host)).toBeUndefined();
        expect(host.length).toBe(2);
        for (const k of [empty, tensors, host]) k.dispose();
        model.dispose();
        for (const c of [TINY.mistral, TINY.gemma2]) {
          const other = CausalLM.fromState(c, randomState(c, 9));
          const k = new KVCache(1);
          await prefill(other, [[1, 2]], k);
          expect(k.kind).toBe('host');
          expect(other.decodeStep(step, k)).toBeUndefined();
          expect(k.length).toBe(2);
          k.dispose();
          other.dispose();
        }
      });

      it('generate gives the same tokens and log-probs with it as without it', async () => {
        const c = grpoLike;
        const model = CausalLM.fromState(c, randomState(c, 14));
        const prompts = randomRows(c, [5, 3, 4, 5], 15).flatMap((p) => [p, p, p, p, p]);
        const run = () =>
          generate(model, prompts, {
            maxNewTokens: 6,
            temperature: 1,
            rng: RandomStream.of({ seed: 3, step: 0, actor: 'test', purpose: 'sample' }),
          });
        let calls = 0;
        const own = model.decodeStep.bind(model);
        model.decodeStep = (s, k) => {
          const z = own(s, k);
          if (z) calls++;
          return z;
        };
        const withIt = await run();
        expect(calls).toBe(5);
        model.decodeStep = () => undefined;
        const without = await run();
        expect(withIt.responses).toEqual(without.responses);
        expect(withIt.logprobs).toEqual(without.logprobs);
        model.dispose();
      });
    });
  }

  it('decodeStep names the argument it rejects', () => {
    const a = native.available
      ? (native.addon as unknown as { decodeStep: (...x: unknown[]) => void })
      : undefined;
    if (!a) return;
    const [B, d, H, hd, I, V, L, cap] = [1, 8, 2, 4, 16, 5, 1, 4];
    const f = (n: number) => new Float32Array(n);
    const sizes = [d, d, d * d, d, d * d, d, d * d, d, d * d, d, d, d, 0, 0, d * I, I, I * d, d];
    const params = [...sizes, 0, 0, 0, 0].map(f);
    const dims = (o: Record<number, number> = {}) =>
      Int32Array.from([B, 1, d, H, H, hd, I, 1, cap, 0, 0, hd, 0, 0, 0, L, V, 1, 1], (v, i) =>
        i in o ? o[i] : v,
      );
    let rope = f(0);
    const call = (dv: Int32Array, ids = Int32Array.of(2), pos = Int32Array.of(1)) =>
      a.decodeStep(
        dv,
        Float64Array.of(1e-5, 0.5, 0, 1),
        ids,
        pos,
        f(V * d),
        f(4 * d),
        params,
        f(d),
        f(d),
        f(V * d),
        Uint8Array.of(1, 1),
        rope,
        rope,
        [f(B * H * cap * hd)],
        [f(B * H * cap * hd)],
        f(V),
      );
    expect(() => call(dims())).not.toThrow();
    expect(() => call(dims({ 1: 2 }))).toThrow(/T must be 1/);
    expect(() => call(dims({ 14: 1 }))).toThrow(/w16 must be 0/);
    expect(() => call(dims(), Int32Array.of(V))).toThrow(/ids holds a token id/);
    expect(() => call(dims(), Int32Array.of(0), Int32Array.of(4))).toThrow(/pos holds a position/);
    expect(() => call(dims({ 8: 1 }))).toThrow(/exceed the cache capacity/);
    expect(() => call(dims({ 16: 6 }))).toThrow(/embed has 40 elements, needs 48/);
    rope = f(hd);
    expect(() => call(dims())).toThrow(/cos must be empty with learned positions/);
    expect(() => call(dims({ 18: 0 }))).not.toThrow();
    expect(() => call(dims({ 18: 0, 11: 2 * hd }))).toThrow(/rot must be even and at most hd/);
    rope = f(hd - 2);
    expect(() => call(dims({ 18: 0 }))).toThrow(/cos has 2 elements, needs 4/);
  });
});
