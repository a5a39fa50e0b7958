import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fromHfConfig,
  hfConfigJson,
  hfModelType,
  toHfConfig,
  toHfGenerationConfig,
} from '../../../src/policy/checkpoint/hf-config.js';
import type { ModelConfig } from '../../../src/policy/config.js';
import { thrown } from '../../helpers/thrown.js';
import { CASES, FIXTURES } from '../hf-fixtures.js';
import { GPT2, LLAMA, QWEN2 } from './fixtures.js';

/** Trimmed from openai-community/gpt2's config.json (no n_inner, no tie_word_embeddings). */
const OFFICIAL_GPT2 = {
  activation_function: 'gelu_new',
  architectures: ['GPT2LMHeadModel'],
  attn_pdrop: 0.1,
  bos_token_id: 50256,
  eos_token_id: 50256,
  layer_norm_epsilon: 1e-5,
  model_type: 'gpt2',
  n_ctx: 1024,
  n_embd: 768,
  n_head: 12,
  n_layer: 12,
  n_positions: 1024,
  vocab_size: 50257,
};

const LLAMA_JSON = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: null,
  hidden_act: 'silu',
  vocab_size: 100,
  bos_token_id: 1,
  eos_token_id: 2,
};

describe('config.json import', () => {
  it('reads GPT-2 with transformers defaults (n_inner null → 4d, tied)', () => {
    const c = fromHfConfig(OFFICIAL_GPT2);
    expect(c).toMatchObject({
      family: 'gpt2',
      vocabSize: 50257,
      hidden: 768,
      layers: 12,
      heads: 12,
      kvHeads: 12,
      headDim: 64,
      intermediate: 3072,
      maxPositions: 1024,
      normEps: 1e-5,
      tieEmbeddings: true,
      bosTokenId: 50256,
      eosTokenId: 50256,
    });
  });

  it('reads Llama with GQA, rope_theta and defaults (head_dim, untied, no biases)', () => {
    const c = fromHfConfig(LLAMA_JSON);
    expect(c).toMatchObject({
      family: 'llama',
      hidden: 64,
      kvHeads: 2,
      headDim: 8,
      intermediate: 172,
      ropeTheta: 500000,
      normEps: 1e-5,
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      tieEmbeddings: false,
    });
    const noKv = fromHfConfig({
      ...LLAMA_JSON,
      num_key_value_heads: undefined,
      attention_bias: true,
    });
    expect(noKv).toMatchObject({ kvHeads: 8, qkvBias: true, oBias: true, mlpBias: false });
    const v5 = fromHfConfig({
      ...LLAMA_JSON,
      rope_theta: undefined,
      rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
    });
    expect(v5.ropeTheta).toBe(1e6);
  });

  it('reads Qwen2: q/k/v biases only, tie as given', () => {
    const c = fromHfConfig({ ...LLAMA_JSON, model_type: 'qwen2', tie_word_embeddings: true });
    expect(c).toMatchObject({
      family: 'llama',
      qkvBias: true,
      oBias: false,
      mlpBias: false,
      tieEmbeddings: true,
    });
  });

  it('reads a Llama-3.1 config: llama3 rope_scaling (transformers 4) and an eos list', () => {
    const c = fromHfConfig({
      ...LLAMA_JSON,
      rope_scaling: {
        rope_type: 'llama3',
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
      eos_token_id: [2, 5, 7],
      pretraining_tp: 1,
      torch_dtype: 'bfloat16',
    });
    expect(c.ropeScaling).toEqual({
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8192,
    });
    expect(c.ropeTheta).toBe(500000);
    expect(c.eosTokenId).toBe(2);
    expect(c.eosTokenIds).toEqual([2, 5, 7]);
  });

  it('reads YaRN with defaults (original length from max_position_embeddings, factor given)', () => {
    const c = fromHfConfig({
      ...LLAMA_JSON,
      model_type: 'qwen2',
      rope_theta: undefined,
      rope_parameters: { rope_type: 'yarn', rope_theta: 1e6, factor: 4 },
    });
    expect(c.ropeScaling).toEqual({ type: 'yarn', factor: 4, originalMaxPositions: 512 });
  });

  it('reads Qwen2 sliding layers from max_window_layers only when use_sliding_window is on', () => {
    const base = { ...LLAMA_JSON, model_type: 'qwen2', num_hidden_layers: 4, sliding_window: 8 };
    expect(
      fromHfConfig({ ...base, use_sliding_window: false, max_window_layers: 2 }),
    ).not.toHaveProperty('layerTypes');
    const on = fromHfConfig({ ...base, use_sliding_window: true, max_window_layers: 2 });
    expect(on.layerTypes).toEqual(['full', 'full', 'sliding', 'sliding']);
    expect(on.slidingWindow).toBe(8);
  });

  it('reads Gemma 3 from transformers 4 spellings (rope_local_base_freq, sliding_window_pattern)', () => {
    const c = fromHfConfig({
      model_type: 'gemma3_text',
      vocab_size: 50,
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 6,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 8,
      max_position_embeddings: 128,
      query_pre_attn_scalar: 8,
      sliding_window: 4,
      sliding_window_pattern: 3,
      rope_theta: 1e6,
      rope_local_base_freq: 1e4,
      rope_scaling: { rope_type: 'linear', factor: 8 },
      hidden_activation: 'gelu_pytorch_tanh',
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      cache_implementation: 'hybrid',
    });
    expect(c).toMatchObject({
      family: 'llama',
      normUnitOffset: true,
      sandwichNorms: true,
      qkNorm: true,
      mlp: 'geglu',
      embedScale: Math.fround(4),
      queryScale: 8 ** -0.5,
      ropeTheta: 1e6,
      ropeLocalTheta: 1e4,
      ropeScaling: { type: 'linear', factor: 8 },
      slidingWindow: 4,
      layerTypes: ['sliding', 'sliding', 'full', 'sliding', 'sliding', 'full'],
      tieEmbeddings: true,
    });
  });

  it('reads the dropout rates (GPT-2 defaults 0.1; attention_dropout elsewhere)', () => {
    expect(fromHfConfig(OFFICIAL_GPT2).dropout).toEqual({
      embedding: 0.1,
      attention: 0.1,
      residual: 0.1,
    });
    expect(fromHfConfig({ ...LLAMA_JSON, attention_dropout: 0.2 }).dropout).toEqual({
      embedding: 0,
      attention: 0.2,
      residual: 0,
    });
  });

  it.each<[string, Record<string, unknown>, string, string]>([
    [
      'exact-erf GELU',
      { ...OFFICIAL_GPT2, activation_function: 'gelu' },
      'UNSUPPORTED',
      "'activation_function' is 'gelu'",
    ],
    [
      'a non-gated activation for Llama',
      { ...LLAMA_JSON, hidden_act: 'relu' },
      'UNSUPPORTED',
      "'hidden_act' is 'relu'; supported: silu (SwiGLU), gelu_new, gelu_pytorch_tanh",
    ],
    [
      'an unknown RoPE type',
      { ...LLAMA_JSON, rope_scaling: { rope_type: 'longrope', factor: 8 } },
      'UNSUPPORTED',
      "'rope_scaling.rope_type' is 'longrope'; supported RoPE types: default, linear, dynamic, yarn, llama3",
    ],
    [
      'a RoPE field it does not know',
      { ...LLAMA_JSON, rope_scaling: { rope_type: 'linear', factor: 2, warp: 3 } },
      'UNSUPPORTED',
      "field 'rope_scaling.warp' of this RoPE (linear) config is not supported",
    ],
    [
      'a field that may change the maths',
      { ...LLAMA_JSON, logit_scale: 0.5 },
      'UNSUPPORTED',
      "field 'logit_scale' of this llama config is not supported",
    ],
    [
      'a quantized checkpoint',
      { ...LLAMA_JSON, quantization_config: { quant_method: 'bitsandbytes' } },
      'UNSUPPORTED',
      "'quantization_config' is set: quantized checkpoints are not supported",
    ],
    [
      'bidirectional Gemma 3',
      { model_type: 'gemma3_text', use_bidirectional_attention: true },
      'UNSUPPORTED',
      "'use_bidirectional_attention' is true",
    ],
    [
      'a Gemma 3 attention soft-cap transformers ignores',
      {
        model_type: 'gemma3_text',
        vocab_size: 10,
        hidden_size: 8,
        intermediate_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        max_position_embeddings: 8,
        sliding_window: null,
        layer_types: ['full_attention'],
        attn_logit_softcapping: 50,
      },
      'UNSUPPORTED',
      "'attn_logit_softcapping' is set, but transformers does not apply it",
    ],
    [
      'a missing field',
      { ...OFFICIAL_GPT2, n_embd: undefined },
      'BAD_CHECKPOINT',
      "field 'n_embd' must be a positive integer, got undefined",
    ],
    [
      'a bad type',
      { ...LLAMA_JSON, rms_norm_eps: '1e-5' },
      'BAD_CHECKPOINT',
      "field 'rms_norm_eps' must be a finite number",
    ],
    [
      'heads not dividing width',
      { ...OFFICIAL_GPT2, n_head: 7 },
      'BAD_CHECKPOINT',
      "describes an invalid model: Model config 'headDim'",
    ],
    [
      'a classifier with two labels',
      {
        ...LLAMA_JSON,
        architectures: ['LlamaForSequenceClassification'],
        id2label: { 0: 'NEG', 1: 'POS' },
      },
      'UNSUPPORTED',
      "'id2label' gives a classifier with 2 labels",
    ],
    [
      'an unknown model_type',
      { model_type: 'bert' },
      'UNKNOWN_NAME',
      'unknown model_type "bert". Supported: gpt2, llama, qwen2, qwen3, mistral, gemma2, gemma3_text, phi3.',
    ],
    [
      'the multimodal Gemma 3',
      { model_type: 'gemma3' },
      'UNKNOWN_NAME',
      'unknown model_type "gemma3" (a multimodal Gemma 3',
    ],
  ])('refuses %s, naming the file and field', (_, json, code, fragment) => {
    const e = thrown(() => fromHfConfig(json, 'm/config.json'));
    expect(e.code).toBe(code);
    expect(e.message).toContain('m/config.json: ');
    expect(e.message).toContain(fragment);
  });
});

/**
 * Fields of a transformers config.json that are bookkeeping, or that Troupe spells another way
 * with the same meaning: max_window_layers (Troupe writes layer_types, which transformers
 * prefers), use_bidirectional_attention (null and false are both causal).
 */
const BOOKKEEPING = [
  'transformers_version',
  'dtype',
  'torch_dtype',
  'use_cache',
  'initializer_range',
  'max_window_layers',
  'use_bidirectional_attention',
];

describe('config.json export', () => {
  it.each<[string, ModelConfig, string, string]>([
    ['gpt2', GPT2, 'GPT2LMHeadModel', 'gpt2'],
    ['llama', LLAMA, 'LlamaForCausalLM', 'llama'],
    ['qwen2', QWEN2, 'Qwen2ForCausalLM', 'qwen2'],
  ])('%s round trips and names its architecture', (_, c, arch, type) => {
    const json = toHfConfig(c, { dtype: 'BF16' });
    expect(json).toMatchObject({
      architectures: [arch],
      model_type: type,
      torch_dtype: 'bfloat16',
      dtype: 'bfloat16',
    });
    expect(hfModelType(c)).toBe(type);
    expect(fromHfConfig(JSON.parse(JSON.stringify(json)))).toEqual(c);
  });

  it.each(CASES)(
    '%s: the config transformers saved comes back from Troupe with the same maths',
    (name) => {
      const theirs = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
      const c = fromHfConfig(theirs);
      const ours = toHfConfig(c);
      expect(fromHfConfig(JSON.parse(JSON.stringify(ours)))).toEqual(c);
      // every field transformers wrote that Troupe writes too has the same value (rope dicts
      // compared by content; transformers' defaults like `null` sliding windows included)
      for (const [k, v] of Object.entries(theirs)) {
        if (BOOKKEEPING.includes(k) || !(k in ours)) continue;
        expect(ours[k], `${name}: ${k}`).toEqual(v);
      }
      for (const k of ['rope_parameters', 'layer_types', 'sliding_window', 'head_dim']) {
        if (k in theirs) expect(ours, `${name}: ${k}`).toHaveProperty(k);
      }
    },
  );

  it('writes the fields transformers reads', () => {
    expect(toHfConfig(GPT2)).toEqual({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      dtype: 'float32',
      torch_dtype: 'float32',
      vocab_size: 11,
      tie_word_embeddings: true,
      bos_token_id: 10,
      eos_token_id: 10,
      pad_token_id: null,
      n_embd: 8,
      n_layer: 2,
      n_head: 2,
      n_inner: null,
      n_positions: 16,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
      embd_pdrop: 0,
      attn_pdrop: 0,
      resid_pdrop: 0,
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
    });
    expect(toHfConfig(LLAMA)).toMatchObject({
      num_key_value_heads: 2,
      head_dim: 4,
      intermediate_size: 24,
      rope_parameters: { rope_type: 'default', rope_theta: 500000 },
      attention_bias: false,
      attention_dropout: 0,
      mlp_bias: false,
      hidden_act: 'silu',
      tie_word_embeddings: false,
    });
    expect(
      toHfConfig({ ...GPT2, dropout: { embedding: 0.1, attention: 0.2, residual: 0.3 } }),
    ).toMatchObject({
      embd_pdrop: 0.1,
      attn_pdrop: 0.2,
      resid_pdrop: 0.3,
    });
  });

  it('writes the fields transformers types as float with a decimal point (its strict configs refuse 4 for 4.0)', () => {
    const c = fromHfConfig(
      JSON.parse(readFileSync(join(FIXTURES, 'gemma2', 'config.json'), 'utf8')),
    );
    const text = hfConfigJson(toHfConfig(c));
    expect(text).toContain('"final_logit_softcapping": 4.0,');
    expect(text).toContain('"attn_logit_softcapping": 3.0,');
    expect(text).toContain('"rope_theta": 10000.0,');
    expect(text).toContain('"query_pre_attn_scalar": 12,'); // an int in transformers
    expect(text).toContain('"num_hidden_layers": 3,');
    expect(fromHfConfig(JSON.parse(text))).toEqual(c);
  });

  it('writes a reward model as …ForSequenceClassification with one label', () => {
    expect(toHfConfig(LLAMA, { sequenceClassification: true })).toMatchObject({
      architectures: ['LlamaForSequenceClassification'],
      num_labels: 1,
      id2label: { 0: 'LABEL_0' },
    });
  });

  it('writes generation_config.json with the token ids', () => {
    expect(
      toHfGenerationConfig({ ...LLAMA, bosTokenId: 1, eosTokenIds: [2, 3], padTokenId: 0 }),
    ).toEqual({
      _from_model_config: true,
      bos_token_id: 1,
      eos_token_id: [2, 3],
      pad_token_id: 0,
    });
  });

  it('refuses configs transformers cannot express', () => {
    const e = thrown(() => hfModelType({ ...LLAMA, qkvBias: false, oBias: true }));
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toContain('sets q/k/v and o biases together');
    expect(() => hfModelType({ ...GPT2, mlpBias: false })).toThrow(
      'gpt2 has biases on every projection',
    );
    expect(() =>
      hfModelType({ ...LLAMA, modelType: 'mistral', qkvBias: true, oBias: true }),
    ).toThrow('mistral has no biases');
  });
});
