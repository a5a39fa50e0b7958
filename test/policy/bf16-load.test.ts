import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftPad } from '../../src/data/batching/collate.js';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import { withPrecision } from '../../src/kernels/precision.js';
import * as tf from '../../src/kernels/tf.js';
import { type FrozenSpec, holdBf16, loadFrozen } from '../../src/policy/bf16.js';
import { readSafetensors, writeSafetensors } from '../../src/policy/checkpoint/safetensors.js';
import { loadModel, readModelConfig, saveModel } from '../../src/policy/io.js';
import { bf16Matrices, predictMemory } from '../../src/policy/memory.js';
import { Bf16Weights, bf16Bits } from '../../src/policy/model/bf16-weights.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import type { HeadName } from '../../src/policy/params.js';
import { loadQuantizedModel } from '../../src/policy/quantize/load.js';
import { type ModelSource, resolveModelSource } from '../../src/policy/source.js';
import { useBackend } from '../helpers/backends.js';
import { nativeSkip as skip } from '../helpers/native.js';
import { rejected } from '../helpers/thrown.js';
import { randomRows, randomState, TINY } from './fixtures.js';

/**
 * A frozen model built as bf16 as it loads (policy/bf16.ts loadFrozen) against the build it
 * replaces: the whole model in fp32 (loadModel / CausalLM.init), then rounded matrix by matrix
 * (holdBf16). The two must hold the same bits (every bf16 matrix, every fp32 parameter) and so
 * give bit-identical outputs; and on wasm the new build's heap high-water mark (each buffer once)
 * must be the fp32 parameters it keeps, exactly — the old one's is every weight in fp32 — so the
 * two differ by 4 bytes a matrix weight (memory.ts bf16Matrices).
 */

const FIXTURES = ['gpt2', 'llama', 'qwen2', 'qwen3', 'gemma2', 'phi3'] as const;

/** A Uint32 view: comparisons by bits (a NaN or −0 would not pass unnoticed). */
const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** The build loadFrozen replaces: the whole model in fp32, then its matrices rounded. */
async function loadThenRound(source: ModelSource): Promise<CausalLM> {
  const m = await loadModel(source);
  await holdBf16(m);
  return m;
}

/** Build `f` under precision bf16, with the wasm heap's peak above what was live (else undefined). */
async function built(f: () => Promise<CausalLM>): Promise<{ model: CausalLM; peak?: number }> {
  const start = tf.getBackend() === 'wasm' ? wasmTensorBytes({ reset: true })! : undefined;
  const model = await withPrecision('bf16', f);
  const peak = start ? wasmTensorBytes()!.peakBytes - start.liveBytes : undefined;
  return { model, peak };
}

/** Both models hold the same bits: the same bf16 matrices in the same order, the same fp32 parameters. */
async function expectSameBits(got: CausalLM, want: CausalLM): Promise<void> {
  const g16 = got.weights16!;
  const w16 = want.weights16!;
  expect([...g16.matrices.keys()]).toEqual([...w16.matrices.keys()]);
  for (const [name, w] of w16.matrices) {
    const g = g16.get(name)!;
    expect(g.shape, name).toEqual(w.shape);
    expect(Buffer.from(g.bits.buffer).equals(Buffer.from(w.bits.buffer)), name).toBe(true);
  }
  expect([...got.params.keys()]).toEqual([...want.params.keys()]);
  for (const [name, v] of want.params) {
    const g = got.params.get(name)!;
    expect(g.shape, name).toEqual(v.shape);
    expect(u32((await g.data()) as Float32Array), name).toEqual(
      u32((await v.data()) as Float32Array),
    );
  }
  expect(got.project).not.toBe(want.project); // each model's own projection over its matrices
  expect(got.hasLmHead).toBe(want.hasLmHead);
}

/** A bf16 forward's outputs: the head's logits when it has one, else the reward model's scores. */
async function outputs(model: CausalLM): Promise<Float32Array> {
  const c = model.config;
  const batch = leftPad(randomRows(c, [7, 4], 3), 0);
  return withPrecision('bf16', async () => {
    const out = tf.tidy(() => {
      const h = model.forward(batch);
      return model.hasLmHead
        ? model.headLogits(tf.reshape(h, [-1, c.hidden]))
        : model.scores(h, batch);
    });
    const data = (await out.data()) as Float32Array;
    out.dispose();
    return data;
  });
}

describe.skipIf(skip !== null)(
  `a frozen model held as bf16 as it loads${skip ? ` (${skip})` : ''}`,
  () => {
    let tmp: string;
    beforeAll(() => {
      tmp = mkdtempSync(join(tmpdir(), 'troupe-bf16-load-'));
    });
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    for (const backend of ['wasm', 'cpu'] as const) {
      describe(backend, () => {
        beforeAll(async () => {
          await useBackend(backend);
        });

        it.each(FIXTURES)(
          '%s checkpoint: the same bits and outputs as load-then-round; the heap peak',
          async (f) => {
            const dir = resolve('test/fixtures/models', f);
            const source = await resolveModelSource(dir);
            const old = await built(() => loadThenRound(source));
            const now = await built(() => loadFrozen({ source }));
            await expectSameBits(now.model, old.model);
            expect(u32(await outputs(now.model))).toEqual(u32(await outputs(old.model)));
            const p = predictMemory({
              config: now.model.config,
              method: 'none',
              batch: 1,
              seq: 1,
              precision: 'bf16',
            });
            if (backend === 'wasm') {
              // every weight in fp32 at once, against only the fp32 parameters left beside the bf16 matrices
              expect(old.peak).toBe(4 * p.params);
              expect(now.peak).toBe(p.weights - p.bf16Weights);
              expect(old.peak! - now.peak!).toBe(4 * bf16Matrices(now.model.config).params);
            }
            now.model.dispose();
            old.model.dispose();
          },
        );

        it.each([
          ['llama (untied head)', TINY.llama, [] as HeadName[]],
          ['gemma2 (tied, sandwich norms)', TINY.gemma2, [] as HeadName[]],
          ['gpt2 with a value head', TINY.gpt2, ['value_head'] as HeadName[]],
        ])(
          'fresh %s: the same bits as CausalLM.init then holdBf16; the heap peak',
          async (_, c, heads) => {
            const spec: FrozenSpec = { config: c, seed: 7 };
            const old = await built(async () => {
              const m = CausalLM.init(c, { seed: 7, heads });
              await holdBf16(m);
              return m;
            });
            const now = await built(() => loadFrozen(spec, { heads }));
            await expectSameBits(now.model, old.model);
            expect(u32(await outputs(now.model))).toEqual(u32(await outputs(old.model)));
            const p = predictMemory({
              config: c,
              method: 'none',
              batch: 1,
              seq: 1,
              precision: 'bf16',
              heads,
            });
            if (backend === 'wasm') {
              expect(old.peak).toBe(4 * p.params);
              expect(now.peak).toBe(p.weights - p.bf16Weights);
            }
            now.model.dispose();
            old.model.dispose();
          },
        );

        it('a reward model saved as a sequence classifier (score head, no LM head)', async () => {
          const c = TINY.llama;
          const dir = join(tmp, `rm-${backend}`);
          const rm = CausalLM.fromState(c, randomState(c, 4, ['score']), ['score']);
          await saveModel(dir, rm);
          rm.dispose();
          const source = await resolveModelSource(dir);
          const old = await built(() => loadThenRound(source));
          const now = await built(() => loadFrozen({ source }));
          expect(now.model.hasLmHead).toBe(false);
          expect(now.model.params.has('score.weight')).toBe(true);
          await expectSameBits(now.model, old.model);
          expect(u32(await outputs(now.model))).toEqual(u32(await outputs(old.model)));
          if (backend === 'wasm') {
            const p = predictMemory({
              config: c,
              method: 'none',
              batch: 1,
              seq: 1,
              precision: 'bf16',
              heads: ['score'],
            });
            expect(now.peak).toBe(p.weights - p.bf16Weights);
            expect(old.peak).toBe(4 * (p.params - c.hidden * c.vocabSize));
            // the predictor counts an untied head's panels, which a classifier's file lacks
            expect(p.bf16Weights - now.model.weights16!.bytes).toBe(
              2 * c.hidden * 32 * Math.ceil(c.vocabSize / 32),
            );
          }
          now.model.dispose();
          old.model.dispose();
        });
      });
    }

    it('a LoRA checkpoint: its targets merged in fp32, then rounded (the same bits as before)', async () => {
      await useBackend('wasm');
      const source = await resolveModelSource(resolve('test/fixtures/peft/llama/adapter'));
      expect(source.adapters.length).toBe(1);
      const old = await built(() => loadThenRound(source));
      const now = await built(() => loadFrozen({ source }));
      await expectSameBits(now.model, old.model);
      const c = now.model.config;
      const p = predictMemory({ config: c, method: 'none', batch: 1, seq: 1, precision: 'bf16' });
      // the adapter (rank 4 on q, v and down) changes q [32, 32], v [32, 16], down [48, 32] a
      // layer: those alone are loaded in fp32 for the merge, beside its A and B
      const targets = c.layers * (32 * 32 + 32 * 16 + 48 * 32);
      const adapters = c.layers * 4 * (32 + 32 + 32 + 16 + 48 + 32);
      const loaded = p.weights - p.bf16Weights + 4 * (targets + adapters);
      expect(old.peak).toBeGreaterThanOrEqual(4 * (p.params + adapters));
      expect(now.peak).toBeGreaterThanOrEqual(loaded);
      // the merge's transients (W + s·A·B: the product, its scaling, the sum) for one matrix
      expect(now.peak).toBeLessThanOrEqual(loaded + 3 * 4 * 48 * 32);
      // measured (wasm, each buffer once): 103 040 bytes before, 49 792 now
      expect(old.peak! - now.peak!).toBeGreaterThan(0.5 * old.peak!);
      now.model.dispose();
      old.model.dispose();
    });

    it('under fp32: loaded and initialised as a trainable model is, no bf16 matrices', async () => {
      await useBackend('wasm');
      const source = await resolveModelSource(resolve('test/fixtures/models/qwen2'));
      const loaded = await loadFrozen({ source });
      const fresh = await loadFrozen({ config: TINY.llama, seed: 2 });
      const want = CausalLM.init(TINY.llama, { seed: 2 });
      expect(loaded.weights16).toBeUndefined();
      expect(fresh.weights16).toBeUndefined();
      const ref = await loadModel(source);
      for (const [a, b] of [
        [loaded, ref],
        [fresh, want],
      ] as const) {
        const [sa, sb] = [await a.stateDict(), await b.stateDict()];
        expect([...sa.keys()]).toEqual([...sb.keys()]);
        for (const [n, t] of sb) expect(u32(sa.get(n)!.data), n).toEqual(u32(t.data));
      }
      for (const m of [loaded, fresh, want, ref]) m.dispose();
    });

    it('bad checkpoints: a tied head unlike the embedding, a missing tensor (also for the NF4 load)', async () => {
      await useBackend('wasm');
      const src = resolve('test/fixtures/models/qwen2');
      const config = await readModelConfig(src);
      expect(config.tieEmbeddings).toBe(true);
      const { tensors } = await readSafetensors(join(src, 'model.safetensors'));
      const emb = tensors.get('model.embed_tokens.weight')!;
      // a tied checkpoint carrying an lm_head that differs from the embedding
      const tied = join(tmp, 'tied-differs');
      const head = Float32Array.from(emb.data, (x) => x + 1);
      const base = await loadModel(src);
      await saveModel(tied, base);
      base.dispose();
      const withHead = new Map(tensors);
      withHead.set('lm_head.weight', { shape: emb.shape, data: head });
      await writeSafetensors(join(tied, 'model.safetensors'), withHead);
      const s = await resolveModelSource(tied);
      const e = await rejected(withPrecision('bf16', () => loadFrozen({ source: s })));
      expect(e.message).toMatch(
        /'lm_head.weight'.*differs from the embedding 'model.embed_tokens.weight'/,
      );
      const q = await rejected(loadQuantizedModel(tied));
      expect(q.message).toMatch(/differs from the embedding/);
      // the same head equal to the embedding loads
      withHead.set('lm_head.weight', emb);
      await writeSafetensors(join(tied, 'model.safetensors'), withHead);
      const ok = await withPrecision('bf16', () => loadFrozen({ source: s }));
      expect(ok.weights16?.get('embed.weight')).toBeDefined();
      ok.dispose();
      // a projection missing from the file
      const missing = new Map(tensors);
      missing.delete('model.layers.0.self_attn.q_proj.weight');
      await writeSafetensors(join(tied, 'model.safetensors'), missing);
      const m = await rejected(withPrecision('bf16', () => loadFrozen({ source: s })));
      expect(m.message).toMatch(
        /tensors do not match the llama config \(missing: model.layers.0.self_attn.q_proj.weight/,
      );
    });

    it('the embedding [V, d] into the panels of Eᵀ, a panel at a time, against a loop by hand', () => {
      const V = 1000; // 31 whole panels and one of 8 columns
      const d = 48;
      const panels = Math.ceil(V / 32);
      const draw = (seed: number) => {
        const e = randomState(TINY.llama, seed).get('embed.weight')!.data;
        const out = new Float32Array(V * d);
        for (let i = 0; i < out.length; i++) out[i] = e[i % e.length] * (1 + i / out.length);
        // ties of bf16 rounding (to even: down, then up), both zeros, the infinities, a NaN
        out.set([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, 0, Infinity, -Infinity, Number.NaN], 5 * d + 3);
        return out;
      };
      const expected = (e: Float32Array) => {
        const want = new Uint16Array(panels * 32 * d); // padding columns 0
        for (let n = 0; n < V; n++)
          for (let k = 0; k < d; k++)
            want[(Math.floor(n / 32) * d + k) * 32 + (n % 32)] = bf16Bits(e[n * d + k]);
        return want;
      };
      const held = new Bf16Weights();
      const a = draw(1);
      held.add('embed.weight', [V, d], a);
      const w = held.get('embed.weight')!;
      expect(w.shape).toEqual([d, V]);
      expect(w.bits).toEqual(expected(a));
      expect(w.bits[(0 * d + 3) * 32 + 5]).toBe(0x3f80); // E[5, 3] = 1 + 2⁻⁸ → 1 (to even)
      expect(w.bits[(0 * d + 4) * 32 + 5]).toBe(0x3f82); // E[5, 4] = 1 + 3·2⁻⁸ → 1 + 2⁻⁶
      // a sync rounds new values into the same panels; the padding stays 0
      const b = draw(2);
      held.assign('embed.weight', [V, d], b);
      expect(w.bits).toEqual(expected(b));
      // widen gives E [V, d] back, each value the float32 of its bf16
      const back = held.widen('embed.weight');
      expect(back.shape).toEqual([V, d]);
      const want = expected(b);
      const top = u32(back.data).map((x) => x >>> 16);
      for (let n = 0; n < V; n++)
        for (let k = 0; k < d; k++)
          expect(top[n * d + k]).toBe(want[(Math.floor(n / 32) * d + k) * 32 + (n % 32)]);
    });
  },
);
