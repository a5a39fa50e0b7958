import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import * as tf from '../kernels/tf.js';
import { writeFileAtomic } from '../util/atomic.js';
import { readCheckpointJson } from './checkpoint/directory.js';
import { readSafetensors, writeSafetensors } from './checkpoint/safetensors.js';
import type { Tensor32 } from './checkpoint/tensor32.js';
import { Lora, type LoraSite } from './lora.js';
import type { CausalLM } from './model/causal-lm.js';

/**
 * LoRA adapters in the PEFT layout: `adapter_config.json` and `adapter_model.safetensors`, with
 * module names of the Hugging Face model and PEFT's shapes (lora_A.weight [r, in], lora_B.weight
 * [out, r]; Troupe keeps A [in, r], B [r, out], so both are transposed on the way).
 */
export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

const LLAMA_MODULE: Record<string, string> = {
  'attn.q': 'self_attn.q_proj',
  'attn.k': 'self_attn.k_proj',
  'attn.v': 'self_attn.v_proj',
  'attn.o': 'self_attn.o_proj',
  'mlp.gate': 'mlp.gate_proj',
  'mlp.up': 'mlp.up_proj',
  'mlp.down': 'mlp.down_proj',
};
const PHI3_MODULE: Record<string, string> = {
  'attn.qkv': 'self_attn.qkv_proj',
  'attn.o': 'self_attn.o_proj',
  'mlp.gate_up': 'mlp.gate_up_proj',
  'mlp.down': 'mlp.down_proj',
};
const GPT2_MODULE: Record<string, string> = {
  'attn.qkv': 'attn.c_attn',
  'attn.o': 'attn.c_proj',
  'mlp.up': 'mlp.c_fc',
  'mlp.down': 'mlp.c_proj',
};

/** `layers.3.attn.q` → the HF module path and PEFT's target name for it. */
function hfModule(model: CausalLM, prefix: string): { path: string; target: string } {
  const m = /^layers\.(\d+)\.(.+)$/.exec(prefix);
  const table = { gpt2: GPT2_MODULE, llama: LLAMA_MODULE, phi3: PHI3_MODULE }[model.config.family];
  const mod = m ? table[m[2]] : undefined;
  if (!m || !mod) {
    throw new TroupeError(
      'UNSUPPORTED',
      `LoRA site '${prefix}' has no ${model.config.family} PEFT module name`,
    );
  }
  return model.config.family === 'gpt2'
    ? { path: `base_model.model.transformer.h.${m[1]}.${mod}`, target: mod }
    : { path: `base_model.model.model.layers.${m[1]}.${mod}`, target: mod.split('.')[1] };
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j];
  return out;
}

/**
 * Write `lora`'s adapters to `dir` in the PEFT layout. `baseModel` is recorded as PEFT's
 * `base_model_name_or_path` (null when absent): the model the adapters were trained on.
 */
export async function saveLoraAdapter(
  dir: string,
  lora: Lora,
  opts: { baseModel?: string } = {},
): Promise<void> {
  const model = lora.model;
  const r = lora.config.rank;
  const tensors = new Map<string, Tensor32>();
  const targets = new Set<string>();
  for (const s of lora.sites) {
    const { path, target } = hfModule(model, s.prefix);
    targets.add(target);
    const A = (await model.params.get(`${s.prefix}.lora_A.weight`)!.data()) as Float32Array; // [in, r]
    const B = (await model.params.get(`${s.prefix}.lora_B.weight`)!.data()) as Float32Array; // [r, out]
    tensors.set(`${path}.lora_A.weight`, { shape: [r, s.inDim], data: transpose(A, s.inDim, r) });
    tensors.set(`${path}.lora_B.weight`, { shape: [s.outDim, r], data: transpose(B, r, s.outDim) });
  }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModel ?? null,
    r,
    lora_alpha: lora.config.alpha,
    lora_dropout: lora.config.dropout,
    target_modules: [...targets].sort(),
    bias: 'none',
    fan_in_fan_out: model.config.family === 'gpt2',
    use_rslora: false,
    modules_to_save: null,
    inference_mode: true,
  };
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  await writeFileAtomic(join(dir, ADAPTER_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
}

interface PeftConfig {
  r: number;
  lora_alpha: number;
  lora_dropout?: number;
  target_modules: string[] | string;
  use_rslora?: boolean;
  peft_type?: string;
}

function field<T>(
  cfg: Record<string, unknown>,
  key: string,
  ok: (v: unknown) => boolean,
  want: string,
  file: string,
): T {
  const v = cfg[key];
  if (!ok(v))
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${file}: '${key}' must be ${want}, got ${JSON.stringify(v)}`,
    );
  return v as T;
}

/**
 * PEFT options that change the maths, with the value Troupe's LoRA computes. Any other value is
 * refused by name rather than ignored (an adapter loaded without it would score differently).
 */
const PLAIN_LORA: readonly [key: string, ok: (v: unknown) => boolean, want: string][] = [
  ['bias', (v) => v === undefined || v === 'none', "'none' (adapter biases are not supported)"],
  ['use_dora', (v) => v === undefined || v === false, 'false (DoRA is not supported)'],
  ['lora_bias', (v) => v === undefined || v === false, 'false'],
  [
    'layers_to_transform',
    (v) => v === undefined || v === null,
    'null (adapters on a subset of layers are not supported)',
  ],
  [
    'layers_pattern',
    (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0),
    'null',
  ],
  [
    'rank_pattern',
    (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0),
    '{} (per-module ranks are not supported)',
  ],
  [
    'alpha_pattern',
    (v) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0),
    '{} (per-module alphas are not supported)',
  ],
  [
    'modules_to_save',
    (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0),
    'null (fully trained extra modules are not supported)',
  ],
  ['layer_replication', (v) => v === undefined || v === null, 'null'],
  ['trainable_token_indices', (v) => v === undefined || v === null, 'null'],
  ['target_parameters', (v) => v === undefined || v === null, 'null'],
  [
    'exclude_modules',
    (v) => v === undefined || v === null || (Array.isArray(v) && v.length === 0),
    'null',
  ],
];

function refuseUnsupported(raw: Record<string, unknown>, file: string): void {
  for (const [key, ok, want] of PLAIN_LORA) field(raw, key, ok, want, file);
}

/** Attach the PEFT adapters in `dir` to `model` (shapes and names checked). */
export async function loadLoraAdapter(model: CausalLM, dir: string): Promise<Lora> {
  const file = join(dir, ADAPTER_CONFIG);
  const raw = (await readCheckpointJson(file, 'adapter config')) as Record<string, unknown>;
  const cfg: PeftConfig = {
    peft_type: field(raw, 'peft_type', (v) => v === 'LORA' || v === undefined, "'LORA'", file),
    r: field(raw, 'r', (v) => Number.isInteger(v) && (v as number) > 0, 'a positive integer', file),
    lora_alpha: field(
      raw,
      'lora_alpha',
      (v) => typeof v === 'number' && v > 0,
      'a positive number',
      file,
    ),
    lora_dropout: field(
      raw,
      'lora_dropout',
      (v) => v === undefined || typeof v === 'number',
      'a number',
      file,
    ),
    target_modules: field(
      raw,
      'target_modules',
      (v) => Array.isArray(v) && v.length > 0,
      'a non-empty list',
      file,
    ),
    use_rslora: field(
      raw,
      'use_rslora',
      (v) => v === undefined || v === false,
      'false (rsLoRA is not supported)',
      file,
    ),
  };
  const lora = new Lora(
    model,
    {
      rank: cfg.r,
      alpha: cfg.lora_alpha,
      dropout: cfg.lora_dropout ?? 0,
      targetModules: cfg.target_modules as string[],
    },
    { seed: 0 },
  );
  refuseUnsupported(raw, file);
  const weights = join(dir, ADAPTER_WEIGHTS);
  const { tensors } = await readSafetensors(weights, { weights: true });
  const used = new Set<string>();
  const load = (s: LoraSite, which: 'A' | 'B') => {
    const name = `${hfModule(model, s.prefix).path}.lora_${which}.weight`;
    const t = tensors.get(name);
    const [rows, cols] = which === 'A' ? [cfg.r, s.inDim] : [s.outDim, cfg.r];
    if (!t) throw new TroupeError('BAD_CHECKPOINT', `${weights}: missing tensor '${name}'`);
    if (t.shape[0] !== rows || t.shape[1] !== cols || t.shape.length !== 2) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `${weights}: tensor '${name}' has shape [${t.shape}], expected [${rows}, ${cols}]`,
      );
    }
    used.add(name);
    const v = model.params.get(`${s.prefix}.lora_${which}.weight`)!;
    const value = tf.tensor(transpose(t.data, rows, cols), v.shape);
    v.assign(value);
    value.dispose();
  };
  for (const s of lora.sites) {
    load(s, 'A');
    load(s, 'B');
  }
  const extra = [...tensors.keys()].filter((n) => !used.has(n));
  if (extra.length > 0) {
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${weights}: tensors the adapter config does not explain: ${extra.slice(0, 10).join(', ')}`,
    );
  }
  return lora;
}
