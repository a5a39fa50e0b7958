import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad } from '../../src/data/batching/collate.js';
import { withPrecision } from '../../src/kernels/precision.js';
import * as tf from '../../src/kernels/tf.js';
import {
  assignWeights,
  bf16Names,
  frozenForPrecision,
  holdBf16,
  modelWeightBytes,
} from '../../src/policy/bf16.js';
import { gpt2Config } from '../../src/policy/config.js';
import { generate } from '../../src/policy/generate.js';
import { Lora } from '../../src/policy/lora.js';
import { bf16Bits } from '../../src/policy/model/bf16-weights.js';
import { CausalLM, type Tensor32 } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { nativeSkip as skip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from './fixtures.js';

/**
 * A model holding its matrices as bf16 (precision bf16's generator, reference and reward model)
 * against the same model in fp32 on the bf16-rounded weights: below 32 rows a product is x (fp32)
 * times the rounded weights either way, so only the order of the fp32 sums differs; from 32 rows
 * (a prefill, a reference's forward) the bf16 kernel also rounds x, a bf16 tolerance.
 */

const scratch = new Float32Array(1);
const word = new Uint32Array(1);
const wordF = new Float32Array(word.buffer);
const round = (x: number) => {
  word[0] = bf16Bits(x, scratch) << 16;
  return wordF[0];
};

/** `state` with the matrices holdBf16 keeps rounded to bf16. */
function rounded(model: CausalLM, state: Map<string, Tensor32>): Map<string, Tensor32> {
  const names = new Set(bf16Names(model));
  const out = new Map<string, Tensor32>();
  for (const [n, t] of state)
    out.set(n, names.has(n) ? { shape: t.shape, data: Float32Array.from(t.data, round) } : t);
  return out;
}

const FAMILIES = ['gpt2', 'llama', 'qwen2', 'qwen3', 'gemma2'] as const;

describe.skipIf(skip !== null)(`bf16-held weights${skip ? ` (${skip})` : ''}`, () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(FAMILIES)(
        '%s: greedy generation equals fp32 generation on the rounded weights',
        async (family) => {
          const c = TINY[family];
          const state = randomState(c, 31);
          const held = CausalLM.fromState(c, state);
          const ref = CausalLM.fromState(c, rounded(held, state));
          await holdBf16(held);
          expect(held.weights16).toBeDefined();
          const prompts = randomRows(c, [5, 2, 3], 4);
          const o = { maxNewTokens: 6, temperature: 0, stopTokenIds: [] };
          const got = await expectNoLeak(() => generate(held, prompts, o));
          const want = await generate(ref, prompts, o);
          expect(got.responses).toEqual(want.responses);
          got.logprobs.forEach((row, b) => {
            expectClose(row, want.logprobs[b], { atol: 1e-5, rtol: 1e-4, what: `row ${b}` });
          });
          // the cached forward ran on the native decoder block (host buffers) with bf16 weights
          const cache = new KVCache(1);
          tf.dispose(held.forward(leftPad([[1, 2]], 0), { cache }));
          expect(cache.kind).toBe('host');
          cache.dispose();
          held.dispose();
          ref.dispose();
        },
      );

      it('a long prefill and a reference forward (≥ 32 rows: x rounded too) within bf16 tolerance', async () => {
        const c = TINY.llama;
        const state = randomState(c, 32);
        const held = CausalLM.fromState(c, state);
        const ref = CausalLM.fromState(c, rounded(held, state));
        await holdBf16(held);
        const batch = leftPad(randomRows(c, [20, 17], 9), 0); // 40 rows
        const labels = tf.tensor1d(
          Int32Array.from(batch.ids, (v) => (v + 1) % c.vocabSize),
          'int32',
        );
        const lp = async (m: CausalLM) =>
          read(
            tf.tidy(() => {
              const h = m.forward(batch);
              return m.tokenLogProbs(tf.reshape(h, [-1, c.hidden]), labels, 0.7);
            }),
          );
        const got = await withPrecision('bf16', () => lp(held));
        const want = await lp(ref);
        expectClose(got, want, { atol: 3e-2, rtol: 2e-2, what: 'log-probs' });
        // a 40-token prompt's prefill through the decoder block's bf16 kernel
        const o = { maxNewTokens: 4, temperature: 0, stopTokenIds: [] };
        const prompts = randomRows(c, [40], 10);
        const g = await generate(held, prompts, o);
        const r = await generate(ref, prompts, o);
        expectClose(g.logprobs[0], r.logprobs[0], { atol: 3e-2, rtol: 2e-2, what: 'prefill' });
        labels.dispose();
        held.dispose();
        ref.dispose();
      });

      it('the weights take half the bytes (measured: tfjs memory and the bf16 buffers)', async () => {
        // a GPT-2 shape whose widths are whole panels (32 columns)
        const c = gpt2Config({ vocabSize: 512, hidden: 64, layers: 2, heads: 4, maxPositions: 64 });
        const model = CausalLM.fromState(c, randomState(c, 5));
        const fp32 = modelWeightBytes(model);
        const before = tf.memory().numBytes;
        let heldFp32 = 0;
        for (const n of bf16Names(model)) heldFp32 += model.params.get(n)!.size * 4;
        const w = await holdBf16(model);
        expect(before - tf.memory().numBytes).toBe(heldFp32); // the fp32 matrices are gone
        expect(w.bytes).toBe(heldFp32 / 2); // and their bf16 copies take half (no padding here)
        expect(modelWeightBytes(model)).toBe(fp32 - heldFp32 / 2);
        // all but the norms, biases and learned positions: the model's bytes nearly halve
        expect(heldFp32 / fp32).toBeGreaterThan(0.93);
        model.dispose();
      });

      it('a sync rounds published weights in; stateDict gives the rounded values back', async () => {
        const c = TINY.qwen2; // tied embedding: stored as Eᵀ, given back as [V, d]
        const a = randomState(c, 1);
        const b = randomState(c, 2);
        const model = CausalLM.fromState(c, a);
        const want = rounded(model, b);
        await holdBf16(model);
        assignWeights(model, b, 'generator');
        const state = await model.stateDict();
        expect(new Set(state.keys())).toEqual(new Set(want.keys()));
        for (const [n, t] of want) {
          expect(state.get(n)?.shape, n).toEqual(t.shape);
          expect(state.get(n)?.data, n).toEqual(t.data);
        }
        expect(() =>
          assignWeights(model, new Map([['nope', b.get('embed.weight')!]]), 'generator'),
        ).toThrow(/generator: the policy sent 'nope'/);
        const e = b.get('embed.weight')!;
        expect(() =>
          assignWeights(
            model,
            new Map([['embed.weight', { shape: [e.shape[1], e.shape[0]], data: e.data }]]),
            'g',
          ),
        ).toThrow(/embed.weight/);
        model.dispose();
      });

      it('frozenForPrecision: bf16 only under precision bf16 and for a plain model', async () => {
        const c = TINY.llama;
        const plain = await frozenForPrecision(CausalLM.fromState(c, randomState(c, 3)));
        expect(plain.weights16).toBeUndefined();
        const m = CausalLM.fromState(c, randomState(c, 3));
        // frozenForPrecision reads the thread's precision before its first await
        await withPrecision('bf16', () => frozenForPrecision(m));
        expect(m.weights16).toBeDefined();
        const lora = CausalLM.fromState(c, randomState(c, 3));
        new Lora(lora, { rank: 2, alpha: 4, dropout: 0, targetModules: ['q', 'v'] }, { seed: 1 });
        await withPrecision('bf16', () => frozenForPrecision(lora));
        expect(lora.weights16).toBeUndefined();
        await expect(holdBf16(lora)).rejects.toThrow(/LoRA adapters or an NF4 base/);
        for (const x of [plain, m, lora]) x.dispose();
      });
    });
  }
});
