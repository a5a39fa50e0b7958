import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { saveHfDirectory } from '../../src/policy/checkpoint/directory.js';
import type { ModelConfig } from '../../src/policy/config.js';
import { Lora, type LoraConfig } from '../../src/policy/lora.js';
import { CausalLM, type Tensor32 } from '../../src/policy/model/causal-lm.js';
import {
  quantizedBase,
  quantizedPrefixes,
  quantizeModel,
  transpose,
} from '../../src/policy/quantize/base.js';
import { loadQuantizedModel } from '../../src/policy/quantize/load.js';
import { dequantizeNF4, quantizeNF4 } from '../../src/policy/quantize/nf4.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

/**
 * QLoRA: the base's projections as NF4, LoRA adapters on top. The reference is the float64
 * plain-loop model (reference-model.ts) on the state whose projections are the dequantised NF4
 * values (TypeScript dequantisation, not the native kernel) with (α/r)·A·B added in float64.
 */
const CASES: Array<[keyof typeof TINY, LoraConfig]> = [
  ['llama', { rank: 3, alpha: 6, dropout: 0, targetModules: ['q', 'v', 'down', 'gate'] }],
  ['gpt2', { rank: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_proj'] }],
  ['qwen2', { rank: 2, alpha: 4, dropout: 0, targetModules: ['k', 'o', 'up'] }],
  ['phi3', { rank: 2, alpha: 4, dropout: 0, targetModules: ['qkv_proj', 'gate_up_proj'] }],
];

function randomizeB(model: CausalLM, lora: Lora, seed: number): void {
  for (const s of lora.sites) {
    const v = model.params.get(`${s.prefix}.lora_B.weight`)!;
    const r = RandomStream.of({ seed, step: 0, actor: 'b', purpose: s.prefix });
    const t = tf.tensor(r.normal(v.size, 0, 0.3), v.shape);
    v.assign(t);
    t.dispose();
  }
}

/** The fp32 state a QLoRA model computes with: NF4 projections dequantised (TypeScript), [in, out]. */
async function dequantizedState(model: CausalLM): Promise<Map<string, Tensor32>> {
  const state = await model.stateDict();
  for (const [prefix, q] of quantizedBase(model)!.matrices) {
    const [outDim, inDim] = q.shape;
    state.set(`${prefix}.weight`, {
      shape: [inDim, outDim],
      data: transpose(dequantizeNF4(q), outDim, inDim),
    });
  }
  return state;
}

/** That state in float64 with every adapter folded in: W + (α/r)·A·B. */
function merged64(state: Map<string, Tensor32>, lora: Lora): Map<string, Tensor32> {
  const out = new Map<string, Tensor32>();
  for (const [n, t] of state)
    if (!n.includes('.lora_'))
      out.set(n, { shape: t.shape, data: Float64Array.from(t.data) as unknown as Float32Array });
  const r = lora.config.rank;
  for (const s of lora.sites) {
    const A = state.get(`${s.prefix}.lora_A.weight`)!.data;
    const B = state.get(`${s.prefix}.lora_B.weight`)!.data;
    for (const part of s.parts) {
      const W = out.get(`${part.prefix}.weight`)!.data as unknown as Float64Array;
      for (let i = 0; i < s.inDim; i++)
        for (let o = 0; o < part.size; o++) {
          let d = 0;
          for (let k = 0; k < r; k++) d += A[i * r + k] * B[k * s.outDim + part.begin + o];
          W[i * part.size + o] += lora.scale * d;
        }
    }
  }
  return out;
}

const rowsOf = (batch: TokenBatch, key: 'ids' | 'mask') =>
  Array.from({ length: batch.batch }, (_, b) => [
    ...batch[key].subarray(b * batch.length, (b + 1) * batch.length),
  ]);

function realRows(batch: TokenBatch, x: ArrayLike<number>, width: number): number[] {
  const out: number[] = [];
  batch.mask.forEach((m, i) => {
    if (m) for (let j = 0; j < width; j++) out.push(x[i * width + j]);
  });
  return out;
}

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`QLoRA on ${backend}${nativeSkip ? ' (no native addon: whole-matrix dequantisation)' : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(CASES)(
      '%s: logits = the float64 reference on the NF4 base + (α/r)·A·B',
      async (family, cfg) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 60));
        const base = await quantizeModel(model);
        // every projection left model.params; embeddings, norms and biases stayed
        for (const p of quantizedPrefixes(model)) {
          expect(model.params.has(`${p}.weight`)).toBe(false);
          expect(base.matrices.has(p)).toBe(true);
        }
        expect(model.params.has('embed.weight')).toBe(true);
        const lora = new Lora(model, cfg, { seed: 1 });
        randomizeB(model, lora, 2);
        const batch = leftPad(randomRows(c, [5, 3], 6), 0);
        const ref = referenceForward(
          c,
          merged64(await dequantizedState(model), lora),
          rowsOf(batch, 'ids'),
          rowsOf(batch, 'mask'),
        );
        const got = await expectNoLeak(async () => {
          const h = model.forward(batch);
          const lg = model.logits(h);
          const out = await read(lg);
          tf.dispose([h, lg]);
          return out;
        });
        expectClose(realRows(batch, got, c.vocabSize), realRows(batch, ref.logits, c.vocabSize), {
          atol: 2e-4,
          rtol: 2e-4,
          what: 'QLoRA logits',
        });
        expect(() => lora.merge()).toThrow(/cannot be merged into an NF4 base/);
        model.dispose();
      },
    );

    it.each(CASES)(
      '%s: adapter gradients = fp32 LoRA on the dequantised base, with and without checkpointing',
      async (family, cfg) => {
        const c = TINY[family];
        const q = CausalLM.fromState(c, randomState(c, 61));
        await quantizeModel(q);
        const ql = new Lora(q, cfg, { seed: 3 });
        randomizeB(q, ql, 4);
        // the same numbers as a plain fp32 model: its projections hold the dequantised values
        const f = CausalLM.fromState(c, await dequantizedState(q));
        const fl = new Lora(f, cfg, { seed: 3 });
        randomizeB(f, fl, 4);
        const batch = leftPad(randomRows(c, [4, 2], 7), 0);
        const w = tf.tensor(
          RandomStream.of({ seed: 5, step: 0, actor: 'w' }).normal(
            batch.batch * batch.length * c.vocabSize,
          ),
          [batch.batch, batch.length, c.vocabSize],
        );
        const grads = (m: CausalLM, l: Lora, checkpoint: boolean) => {
          const { value, grads: g } = tf.variableGrads(
            () => tf.sum(tf.mul(m.logits(m.forward(batch, { checkpoint })), w)) as tf.Scalar,
            l.trainableNames.map((n) => m.params.get(n)!),
          );
          value.dispose();
          return l.trainableNames.map((n) => g[m.params.get(n)!.name]);
        };
        const want = grads(f, fl, false);
        for (const checkpoint of [false, true]) {
          const got = grads(q, ql, checkpoint);
          for (const [i, n] of ql.trainableNames.entries()) {
            const ref = await read(want[i]);
            // fp32 sums in another order (tile by tile): the error scales with the gradient's
            // size, so an element near zero gets the tensor's scale (measured ≤ 3.4e-6 of it)
            const scale = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
            expectClose(await read(got[i]), ref, {
              atol: Math.max(1e-4, 1e-5 * scale),
              rtol: 1e-4,
              what: `${n}${checkpoint ? ' (checkpointed)' : ''}`,
            });
          }
          tf.dispose(got);
        }
        tf.dispose([...want, w]);
        q.dispose();
        f.dispose();
      },
    );
  });
}

describe('loadQuantizedModel (tensor by tensor from a checkpoint)', () => {
  let dir: string;
  beforeAll(async () => {
    await useBackend('wasm');
    dir = mkdtempSync(join(tmpdir(), 'troupe-qlora-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['llama', 'gpt2', 'phi3'] as const)(
    '%s: the same NF4 codes as quantising the loaded fp32 model, fp32 parameters the same',
    async (family) => {
      const c: ModelConfig = TINY[family];
      const state = randomState(c, 62);
      const path = join(dir, family);
      await saveHfDirectory(path, c, state, { dtype: 'BF16' });
      const { model, base } = await loadQuantizedModel(path);
      const plain = CausalLM.fromState(c, state); // what the checkpoint holds, rounded to bf16 below
      await quantizeModel(plain); // the same parameters left fp32
      for (const p of quantizedPrefixes(model)) {
        const [inDim, outDim] = [
          state.get(`${p}.weight`)!.shape[0],
          state.get(`${p}.weight`)!.shape[1],
        ];
        const bf16 = roundBf16(state.get(`${p}.weight`)!.data);
        const want = quantizeNF4(transpose(bf16, inDim, outDim), [outDim, inDim]);
        const got = base.matrices.get(p)!;
        expect(got.shape).toEqual([outDim, inDim]);
        expect(Array.from(got.codes)).toEqual(Array.from(want.codes));
        expect(Array.from(got.absmaxCodes)).toEqual(Array.from(want.absmaxCodes));
        expect(got.offset).toBe(want.offset);
      }
      expect([...model.params.keys()].sort()).toEqual([...plain.params.keys()].sort());
      expectClose(
        await read(model.params.get('embed.weight')!),
        roundBf16(state.get('embed.weight')!.data),
        {
          atol: 0,
          rtol: 0,
        },
      );
      model.dispose();
      plain.dispose();
    },
  );

  it('a sharded checkpoint (model.safetensors.index.json) loads to the same codes; a weight_map entry outside the directory is refused', async () => {
    const c = TINY.llama;
    const state = randomState(c, 64);
    const one = join(dir, 'one-file');
    const sharded = join(dir, 'sharded');
    await saveHfDirectory(one, c, state);
    await saveHfDirectory(sharded, c, state, { maxShardBytes: 4096 });
    const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
    expect(readdirSync(sharded)).toContain('model.safetensors.index.json');
    const a = await loadQuantizedModel(one);
    const b = await loadQuantizedModel(sharded);
    expect([...b.base.matrices.keys()].sort()).toEqual([...a.base.matrices.keys()].sort());
    for (const [p, m] of a.base.matrices)
      expect(Array.from(b.base.matrices.get(p)!.codes)).toEqual(Array.from(m.codes));
    a.model.dispose();
    b.model.dispose();
    const indexPath = join(sharded, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    const first = Object.keys(index.weight_map)[0];
    index.weight_map[first] = '../elsewhere.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    await expect(loadQuantizedModel(sharded)).rejects.toThrow(
      /weight_map entry must be a \.safetensors file name in the directory/,
    );
  });

  it('refuses a checkpoint that does not match its config, naming the tensors', async () => {
    const c = TINY.llama;
    const state = randomState(c, 63);
    state.delete('layers.1.mlp.down.weight');
    const path = join(dir, 'broken');
    await saveHfDirectory(
      path,
      { ...c, layers: 1 },
      new Map([...state].filter(([n]) => !n.startsWith('layers.1.'))),
    );
    const cfgPath = join(path, 'config.json');
    const { readFileSync, writeFileSync } = await import('node:fs');
    const json = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...json, num_hidden_layers: 2 }));
    await expect(loadQuantizedModel(path)).rejects.toThrow(/missing: model\.layers\.1\./);
  });
});

/** float32 → bfloat16 → float32, round to nearest even (what a BF16 save stores). */
function roundBf16(x: Float32Array): Float32Array {
  const u = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}
