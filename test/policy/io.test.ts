import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad } from '../../src/data/batching/collate.js';
import * as tf from '../../src/kernels/tf.js';
import { hfModelType } from '../../src/policy/checkpoint/hf-config.js';
import { readSafetensors, writeSafetensors } from '../../src/policy/checkpoint/safetensors.js';
import type { Tensor32 } from '../../src/policy/checkpoint/tensor32.js';
import { loadModel, loadOptimizer, saveModel, saveOptimizer } from '../../src/policy/io.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { Lora } from '../../src/policy/lora.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { AdamW } from '../../src/policy/optim/index.js';
import { loadLoraAdapter, saveLoraAdapter } from '../../src/policy/peft.js';
import { expectClose, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';
import { referenceForward } from './reference-model.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-io-'));
const FAMILIES = Object.keys(TINY) as (keyof typeof TINY)[];

async function logitsOf(model: CausalLM, rows: number[][]): Promise<Float64Array> {
  const h = model.forward(leftPad(rows, 0));
  const lg = model.logits(h);
  const out = await read(lg);
  tf.dispose([h, lg]);
  return out;
}

/** [rows, cols] → [cols, rows] */
function t2(d: Float32Array, rows: number, cols: number): Float32Array {
  const o = new Float32Array(d.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j * rows + i] = d[i * cols + j];
  return o;
}

describe('model and optimizer IO', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each(FAMILIES)(
    '%s: a saved directory loads back bit-exactly, heads included (a reward model without its LM head)',
    async (family) => {
      const c = TINY[family];
      const model = CausalLM.fromState(c, randomState(c, 70, ['score']), ['score']);
      const dir = tmp();
      await saveModel(dir, model);
      const back = await loadModel(dir);
      // saved as …ForSequenceClassification: an untied LM head is not part of it
      const kept = [...model.params.keys()].filter(
        (n) => c.tieEmbeddings || n !== 'lm_head.weight',
      );
      expect([...back.params.keys()].sort()).toEqual(kept.sort());
      expect(back.hasLmHead).toBe(c.tieEmbeddings);
      if (!c.tieEmbeddings) expect(() => back.headWeight()).toThrow(/has no LM head/);
      const a = await model.stateDict();
      for (const [n, t] of await back.stateDict()) expect(t.data, n).toEqual(a.get(n)!.data);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(cfg.model_type).toBe(hfModelType(c));
      model.dispose();
      back.dispose();
    },
  );

  it('imports a GPT-2 file written with Hugging Face names by hand (Conv1D [in,out], fused c_attn, attn.bias buffers)', async () => {
    const c = TINY.gpt2;
    const ours = randomState(c, 71);
    const d = c.hidden;
    const hf = new Map<string, Tensor32>();
    const put = (n: string, t: Tensor32) => hf.set(n, t);
    put('wte.weight', ours.get('embed.weight')!);
    put('wpe.weight', ours.get('pos_embed.weight')!);
    for (let l = 0; l < c.layers; l++) {
      const p = `layers.${l}`;
      const q = ours.get(`${p}.attn.q.weight`)!.data;
      const k = ours.get(`${p}.attn.k.weight`)!.data;
      const v = ours.get(`${p}.attn.v.weight`)!.data;
      const fused = new Float32Array(d * 3 * d);
      for (let i = 0; i < d; i++) {
        fused.set(q.subarray(i * d, (i + 1) * d), i * 3 * d);
        fused.set(k.subarray(i * d, (i + 1) * d), i * 3 * d + d);
        fused.set(v.subarray(i * d, (i + 1) * d), i * 3 * d + 2 * d);
      }
      const bias = new Float32Array(3 * d);
      for (const [j, n] of ['q', 'k', 'v'].entries())
        bias.set(ours.get(`${p}.attn.${n}.bias`)!.data, j * d);
      put(`h.${l}.attn.c_attn.weight`, { shape: [d, 3 * d], data: fused });
      put(`h.${l}.attn.c_attn.bias`, { shape: [3 * d], data: bias });
      put(`h.${l}.attn.bias`, { shape: [1, 1, 32, 32], data: new Float32Array(32 * 32).fill(1) });
      for (const [hn, tn] of [
        ['ln_1', 'attn_norm'],
        ['ln_2', 'mlp_norm'],
        ['attn.c_proj', 'attn.o'],
        ['mlp.c_fc', 'mlp.up'],
        ['mlp.c_proj', 'mlp.down'],
      ]) {
        put(`h.${l}.${hn}.weight`, ours.get(`${p}.${tn}.weight`)!);
        put(`h.${l}.${hn}.bias`, ours.get(`${p}.${tn}.bias`)!);
      }
    }
    put('ln_f.weight', ours.get('final_norm.weight')!);
    put('ln_f.bias', ours.get('final_norm.bias')!);
    const dir = tmp();
    await writeSafetensors(join(dir, 'model.safetensors'), hf);
    const config = {
      model_type: 'gpt2',
      vocab_size: c.vocabSize,
      n_embd: d,
      n_layer: c.layers,
      n_head: c.heads,
      n_positions: 32,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
    };
    await writeFileJson(join(dir, 'config.json'), config);
    const model = await loadModel(dir);
    const rows = randomRows(c, [5, 3], 2);
    const ref = referenceForward(
      c,
      ours,
      rows.map((r) => [...Array(5 - r.length).fill(0), ...r]),
      rows.map((r) => [...Array(5 - r.length).fill(0), ...r.map(() => 1)]),
    );
    const got = await logitsOf(model, rows);
    expectClose(got.subarray(0, 5 * c.vocabSize), ref.logits.subarray(0, 5 * c.vocabSize), {
      atol: 2e-4,
      rtol: 2e-4,
    });
    model.dispose();
  });

  it('imports a Llama file written with Hugging Face names by hand ([out,in] linear weights, untied lm_head)', async () => {
    const c = TINY.llama;
    const ours = randomState(c, 72);
    const hf = new Map<string, Tensor32>();
    const lin = (hn: string, tn: string) => {
      const t = ours.get(`${tn}.weight`)!;
      hf.set(`${hn}.weight`, {
        shape: [t.shape[1], t.shape[0]],
        data: t2(t.data, t.shape[0], t.shape[1]),
      });
    };
    hf.set('model.embed_tokens.weight', ours.get('embed.weight')!);
    for (let l = 0; l < c.layers; l++) {
      const p = `layers.${l}`;
      hf.set(`model.layers.${l}.input_layernorm.weight`, ours.get(`${p}.attn_norm.weight`)!);
      hf.set(
        `model.layers.${l}.post_attention_layernorm.weight`,
        ours.get(`${p}.mlp_norm.weight`)!,
      );
      for (const n of ['q', 'k', 'v', 'o'])
        lin(`model.layers.${l}.self_attn.${n}_proj`, `${p}.attn.${n}`);
      for (const n of ['gate', 'up', 'down'])
        lin(`model.layers.${l}.mlp.${n}_proj`, `${p}.mlp.${n}`);
    }
    hf.set('model.norm.weight', ours.get('final_norm.weight')!);
    lin('lm_head', 'lm_head');
    const dir = tmp();
    await writeSafetensors(join(dir, 'model.safetensors'), hf);
    await writeFileJson(join(dir, 'config.json'), {
      model_type: 'llama',
      vocab_size: c.vocabSize,
      hidden_size: c.hidden,
      intermediate_size: c.intermediate,
      num_hidden_layers: c.layers,
      num_attention_heads: c.heads,
      num_key_value_heads: c.kvHeads,
      max_position_embeddings: c.maxPositions,
      rms_norm_eps: c.normEps,
      rope_theta: c.ropeTheta,
      hidden_act: 'silu',
      tie_word_embeddings: false,
    });
    const model = await loadModel(dir);
    const rows = randomRows(c, [4], 3);
    const ref = referenceForward(c, ours, rows, [rows[0].map(() => 1)]);
    expectClose(await logitsOf(model, rows), ref.logits, { atol: 2e-4, rtol: 2e-4 });
    model.dispose();
  });

  it('optimizer state saved and restored continues training exactly as without the interruption', async () => {
    const c = TINY.llama;
    const batch = leftPad(randomRows(c, [6, 6], 4), 0);
    const train = async (model: CausalLM, opt: AdamW, steps: number) => {
      for (let s = 0; s < steps; s++) {
        const { value, grads } = tf.variableGrads(
          () => lmLoss(model, batch).loss,
          [...model.params.values()],
        );
        const byName = new Map([...model.params].map(([n, v]) => [n, grads[v.name]]));
        opt.step(byName, 1e-2);
        tf.dispose([value, ...Object.values(grads)]);
      }
    };
    const straight = CausalLM.fromState(c, randomState(c, 73));
    const o1 = new AdamW(straight.params, straight.specs, { lr: 1e-2 });
    await train(straight, o1, 3);

    const first = CausalLM.fromState(c, randomState(c, 73));
    const o2 = new AdamW(first.params, first.specs, { lr: 1e-2 });
    await train(first, o2, 2);
    const dir = tmp();
    await saveModel(dir, first);
    await saveOptimizer(dir, o2);
    const resumed = await loadModel(dir);
    const o3 = new AdamW(resumed.params, resumed.specs, { lr: 1e-2 });
    await loadOptimizer(dir, o3);
    await train(resumed, o3, 1);
    const want = await straight.stateDict();
    for (const [n, t] of await resumed.stateDict()) expect(t.data, n).toEqual(want.get(n)!.data);
    for (const x of [straight, first, resumed]) x.dispose();
    for (const o of [o1, o2, o3]) o.dispose();
  });

  it.each(['llama', 'gpt2', 'phi3'] as const)(
    '%s: LoRA adapters round-trip through the PEFT layout',
    async (family) => {
      const c = TINY[family];
      const state = randomState(c, 74);
      const model = CausalLM.fromState(c, state);
      const targets = {
        gpt2: ['c_attn', 'mlp.c_proj'],
        llama: ['q_proj', 'v_proj', 'down_proj'],
        phi3: ['qkv_proj', 'gate_up_proj'],
      }[family];
      const lora = new Lora(
        model,
        { rank: 2, alpha: 8, dropout: 0.1, targetModules: targets },
        { seed: 5 },
      );
      for (const n of lora.trainableNames) {
        const v = model.params.get(n)!;
        const t = tf.randomNormal(v.shape, 0, 0.2, 'float32', 7);
        v.assign(t);
        t.dispose();
      }
      const rows = randomRows(c, [5], 5);
      const want = await logitsOf(model, rows);
      const dir = tmp();
      await saveLoraAdapter(dir, lora, { baseModel: 'tiny' });
      const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
      expect(cfg).toMatchObject({
        peft_type: 'LORA',
        r: 2,
        lora_alpha: 8,
        lora_dropout: 0.1,
        fan_in_fan_out: family === 'gpt2',
      });
      const { tensors } = await readSafetensors(join(dir, 'adapter_model.safetensors'));
      const aName = {
        gpt2: 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
        llama: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
        phi3: 'base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight',
      }[family];
      expect(tensors.get(aName)!.shape).toEqual([2, c.hidden]);
      if (family === 'phi3') {
        // one B over the fused rows: q, k, v widths stacked, as PEFT's qkv_proj adapter
        const bName = 'base_model.model.model.layers.0.mlp.gate_up_proj.lora_B.weight';
        expect(tensors.get(bName)!.shape).toEqual([2 * c.intermediate, 2]);
        expect(cfg.target_modules).toEqual(['gate_up_proj', 'qkv_proj']);
      }
      const fresh = CausalLM.fromState(c, state);
      await loadLoraAdapter(fresh, dir);
      expectClose(await logitsOf(fresh, rows), want, { atol: 1e-6, rtol: 1e-6 });
      model.dispose();
      fresh.dispose();
    },
  );
});

async function writeFileJson(path: string, v: unknown): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, JSON.stringify(v));
}
