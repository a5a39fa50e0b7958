import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import type { ModelConfig } from '../../src/policy/config.js';
import { Lora, type LoraConfig } from '../../src/policy/lora.js';
import { CausalLM, type Tensor32 } from '../../src/policy/model/causal-lm.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

const CASES: Array<[keyof typeof TINY, LoraConfig]> = [
  [
    'llama',
    { rank: 3, alpha: 6, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj', 'gate'] },
  ],
  ['gpt2', { rank: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_proj'] }],
  ['qwen2', { rank: 4, alpha: 4, dropout: 0, targetModules: ['k', 'o', 'up'] }],
  ['qwen3', { rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'k_proj', 'v_proj'] }],
  ['gemma2', { rank: 2, alpha: 3, dropout: 0, targetModules: ['q', 'o', 'gate', 'down'] }],
  [
    'phi3',
    { rank: 3, alpha: 6, dropout: 0, targetModules: ['qkv_proj', 'o_proj', 'gate_up_proj'] },
  ],
];

/** Give B random values (it starts at zero) so the adapters do something. */
function randomizeB(model: CausalLM, lora: Lora, seed: number): void {
  for (const s of lora.sites) {
    const v = model.params.get(`${s.prefix}.lora_B.weight`)!;
    const r = RandomStream.of({ seed, step: 0, actor: 'b', purpose: s.prefix });
    const t = tf.tensor(r.normal(v.size, 0, 0.3), v.shape);
    v.assign(t);
    t.dispose();
  }
}

/** The base state with every adapter folded in, in float64: W + (α/r)·A·B. */
async function mergedState64(
  c: ModelConfig,
  model: CausalLM,
  lora: Lora,
): Promise<Map<string, Tensor32>> {
  const state = await model.stateDict();
  const out = new Map<string, Tensor32>();
  for (const [n, t] of state) {
    if (!n.includes('.lora_'))
      out.set(n, { shape: t.shape, data: Float64Array.from(t.data) as unknown as Float32Array });
  }
  for (const s of lora.sites) {
    const A = state.get(`${s.prefix}.lora_A.weight`)!.data;
    const B = state.get(`${s.prefix}.lora_B.weight`)!.data;
    const r = lora.config.rank;
    for (const part of s.parts) {
      const W = out.get(`${part.prefix}.weight`)!.data as unknown as Float64Array;
      for (let i = 0; i < s.inDim; i++) {
        for (let o = 0; o < part.size; o++) {
          let d = 0;
          for (let k = 0; k < r; k++) d += A[i * r + k] * B[k * s.outDim + part.begin + o];
          W[i * part.size + o] += lora.scale * d;
        }
      }
    }
  }
  void c;
  return out;
}

function rowsOf(batch: TokenBatch, key: 'ids' | 'mask'): number[][] {
  return Array.from({ length: batch.batch }, (_, b) => [
    ...batch[key].subarray(b * batch.length, (b + 1) * batch.length),
  ]);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`LoRA on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(CASES)(
      '%s: starts equal to the base model, then equals the reference on W + (α/r)·A·B',
      async (family, cfg) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 50));
        const batch = leftPad(randomRows(c, [5, 3], 6), 0);
        const base = await read(model.logits(model.forward(batch)));
        const lora = new Lora(model, cfg, { seed: 1 });
        await expectNoLeak(async () => {
          const h = model.forward(batch);
          const lg = model.logits(h);
          expectClose(await read(lg), base, { atol: 0, rtol: 0, what: 'B = 0 start' });
          tf.dispose([h, lg]);
        });
        randomizeB(model, lora, 2);
        const ref = referenceForward(
          c,
          await mergedState64(c, model, lora),
          rowsOf(batch, 'ids'),
          rowsOf(batch, 'mask'),
        );
        const real = (x: ArrayLike<number>) => {
          const out: number[] = [];
          batch.mask.forEach((m, i) => {
            if (m) for (let j = 0; j < c.vocabSize; j++) out.push(x[i * c.vocabSize + j]);
          });
          return out;
        };
        const adapted = await read(model.logits(model.forward(batch)));
        expectClose(real(adapted), real(ref.logits), {
          atol: 2e-4,
          rtol: 2e-4,
          what: 'adapted logits',
        });
        // Merging folds the same update into W; unmerging restores W.
        const w0 = await read(model.params.get(`${lora.sites[0].parts[0].prefix}.weight`)!);
        lora.merge();
        expectClose(await read(model.logits(model.forward(batch))), adapted, {
          atol: 2e-5,
          rtol: 1e-4,
          what: 'merged',
        });
        lora.unmerge();
        expectClose(await read(model.params.get(`${lora.sites[0].parts[0].prefix}.weight`)!), w0, {
          atol: 1e-6,
          rtol: 0,
          what: 'unmerged W',
        });
        model.dispose();
      },
    );

    it.each(CASES)(
      '%s: only the adapters get gradients, equal to finite differences',
      async (family, cfg) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 51));
        const lora = new Lora(model, cfg, { seed: 3 });
        randomizeB(model, lora, 4);
        const batch = leftPad(randomRows(c, [4, 2], 7), 0);
        const w = RandomStream.of({ seed: 5, step: 0, actor: 'w' }).normal(
          batch.batch * batch.length * c.vocabSize,
        );
        batch.mask.forEach((m, i) => {
          if (!m) w.fill(0, i * c.vocabSize, (i + 1) * c.vocabSize);
        });
        const wt = tf.tensor(w, [batch.batch, batch.length, c.vocabSize]);
        const names = lora.trainableNames;
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.mul(model.logits(model.forward(batch)), wt)) as tf.Scalar,
          names.map((n) => model.params.get(n)!),
        );
        expect(Object.keys(grads).length).toBe(names.length);
        const state = await model.stateDict();
        const objective = async () => {
          const m = await mergedState64(c, model, lora);
          const { logits } = referenceForward(c, m, rowsOf(batch, 'ids'), rowsOf(batch, 'mask'));
          return logits.reduce((s, v, i) => s + v * w[i], 0);
        };
        const pick = RandomStream.of({ seed: 6, step: 0, actor: 'pick' });
        for (const n of names) {
          const g = await read(grads[model.params.get(n)!.name]);
          const v = model.params.get(n)!;
          const data = Float32Array.from(state.get(n)!.data);
          const i = pick.nextInt(data.length);
          const eps = 1e-3;
          const at = async (x: number) => {
            data[i] = x;
            const t = tf.tensor(data, v.shape);
            v.assign(t);
            t.dispose();
            return objective();
          };
          const keep = state.get(n)!.data[i];
          const fd = ((await at(keep + eps)) - (await at(keep - eps))) / (2 * eps);
          await at(keep);
          expectClose([g[i]], [fd], { atol: 5e-3, rtol: 5e-3, what: `d/d ${n}[${i}]` });
        }
        tf.dispose([value, wt, ...Object.values(grads)]);
        model.dispose();
      },
    );
  });
}

describe('LoRA (cpu)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('dropout draws from its key: same key same output, no key no dropout; checkpointing agrees', async () => {
    const c = TINY.llama;
    const model = CausalLM.fromState(c, randomState(c, 52));
    const lora = new Lora(
      model,
      { rank: 2, alpha: 2, dropout: 0.5, targetModules: ['q', 'v'] },
      { seed: 1 },
    );
    randomizeB(model, lora, 9);
    const batch = leftPad(randomRows(c, [4], 8), 0);
    const run = async () => read(model.logits(model.forward(batch)));
    const evalOut = await run();
    lora.dropoutKey = { seed: 1, step: 3, actor: 'policy' };
    const a = await run();
    const b = await run();
    expect(a).toEqual(b);
    expect(a).not.toEqual(evalOut);
    const grad = (checkpoint: boolean) => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(model.logits(model.forward(batch, { checkpoint }))) as tf.Scalar,
        lora.trainableNames.map((n) => model.params.get(n)!),
      );
      value.dispose();
      return grads;
    };
    const g1 = grad(false);
    const g2 = grad(true);
    for (const k of Object.keys(g1))
      expectClose(await read(g2[k]), await read(g1[k]), { atol: 1e-6, rtol: 1e-5, what: k });
    tf.dispose([...Object.values(g1), ...Object.values(g2)]);
    model.dispose();
  });

  it('checkpointing with the base frozen (trainable false) leaves every LoRA gradient unchanged', async () => {
    for (const c of [TINY.llama, TINY.gpt2]) {
      const model = CausalLM.fromState(c, randomState(c, 53));
      const lora = new Lora(
        model,
        { rank: 2, alpha: 4, dropout: 0, targetModules: ['q', 'v'] },
        { seed: 2 },
      );
      randomizeB(model, lora, 11);
      const names = new Set(lora.trainableNames);
      const batch = leftPad(randomRows(c, [5, 3], 7), 0);
      const grad = async (checkpoint: boolean, baseFrozen: boolean) => {
        for (const [n, v] of model.params) v.trainable = names.has(n) || !baseFrozen;
        const { value, grads } = tf.variableGrads(
          () => tf.sum(model.logits(model.forward(batch, { checkpoint }))) as tf.Scalar,
          lora.trainableNames.map((n) => model.params.get(n)!),
        );
        const out = Object.fromEntries(
          await Promise.all(
            Object.entries(grads).map(async ([k, g]) => [k, await read(g)] as const),
          ),
        );
        tf.dispose([value, ...Object.values(grads)]);
        return out;
      };
      const plain = await grad(false, true);
      // the recompute differentiating every parameter (a base that is not marked frozen)
      const everyParam = await grad(true, false);
      const frozenSkipped = await grad(true, true);
      const keys = lora.trainableNames.map((n) => model.params.get(n)!.name);
      expect(Object.keys(frozenSkipped).sort()).toEqual([...keys].sort());
      for (const k of keys) {
        expect(frozenSkipped[k], `${c.family} ${k}`).toEqual(everyParam[k]);
        expectClose(frozenSkipped[k], plain[k], {
          atol: 1e-6,
          rtol: 1e-5,
          what: `${c.family} ${k}`,
        });
      }
      model.dispose();
    }
  });

  it('rejects bad configs with the field named', () => {
    const model = CausalLM.init(TINY.gpt2, { seed: 1 });
    const cfg = { rank: 2, alpha: 2, dropout: 0, targetModules: ['q'] };
    expect(() => new Lora(model, { ...cfg, targetModules: ['qq'] }, { seed: 1 })).toThrow(
      /target module 'qq' is unknown. Known: q, k, v/,
    );
    expect(() => new Lora(model, { ...cfg, targetModules: ['gate'] }, { seed: 1 })).toThrow(
      /needs a gated MLP/,
    );
    const phi3 = CausalLM.init(TINY.phi3, { seed: 1 });
    expect(() => new Lora(phi3, { ...cfg, targetModules: ['q_proj'] }, { seed: 1 })).toThrow(
      "LoRA target 'q_proj': Phi-3 fuses this projection; target 'qkv_proj' (as PEFT does)",
    );
    phi3.dispose();
    const llama = CausalLM.init(TINY.llama, { seed: 1 });
    expect(() => new Lora(llama, { ...cfg, targetModules: ['gate_up_proj'] }, { seed: 1 })).toThrow(
      "is Phi-3's fused gate/up projection; use gate, up for llama",
    );
    llama.dispose();
    expect(() => new Lora(model, { ...cfg, rank: 0 }, { seed: 1 })).toThrow(
      /'rank' must be an integer ≥ 1/,
    );
    expect(() => new Lora(model, { ...cfg, dropout: 1 }, { seed: 1 })).toThrow(
      /'dropout' must be in \[0, 1\)/,
    );
    model.dispose();
  });
});
