import { describe, expect, it } from 'vitest';
import { TroupeError } from '../../../src/errors.js';
import { fromHfConfig, hfModelType, toHfConfig } from '../../../src/policy/checkpoint/index.js';
import type { ModelConfig } from '../../../src/policy/config.js';
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

function thrown(fn: () => unknown): TroupeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TroupeError);
    return e as TroupeError;
  }
  throw new Error('expected a TroupeError');
}

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

  it.each<[string, Record<string, unknown>, string, string]>([
    [
      'exact-erf GELU',
      { ...OFFICIAL_GPT2, activation_function: 'gelu' },
      'UNSUPPORTED',
      "'activation_function' is 'gelu'",
    ],
    [
      'a non-SiLU Llama',
      { ...LLAMA_JSON, hidden_act: 'gelu' },
      'UNSUPPORTED',
      "'hidden_act' is 'gelu'",
    ],
    [
      'rope_scaling',
      { ...LLAMA_JSON, rope_scaling: { rope_type: 'llama3', factor: 8 } },
      'UNSUPPORTED',
      '\'rope_scaling\' {"rope_type":"llama3","factor":8} is not supported yet',
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
      'an unknown model_type',
      { model_type: 'bert' },
      'UNKNOWN_NAME',
      'unknown model_type "bert". Supported: gpt2, llama, qwen2.',
    ],
  ])('refuses %s, naming the file and field', (_, json, code, fragment) => {
    const e = thrown(() => fromHfConfig(json, 'm/config.json'));
    expect(e.code).toBe(code);
    expect(e.message).toContain('m/config.json: ');
    expect(e.message).toContain(fragment);
  });
});

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
    });
    expect(hfModelType(c)).toBe(type);
    expect(fromHfConfig(JSON.parse(JSON.stringify(json)))).toEqual(c);
  });

  it('writes the fields transformers reads', () => {
    expect(toHfConfig(GPT2)).toEqual({
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      torch_dtype: 'float32',
      vocab_size: 11,
      tie_word_embeddings: true,
      bos_token_id: 10,
      eos_token_id: 10,
      n_embd: 8,
      n_layer: 2,
      n_head: 2,
      n_inner: 32,
      n_positions: 16,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
    });
    expect(toHfConfig(LLAMA)).toMatchObject({
      num_key_value_heads: 2,
      head_dim: 4,
      intermediate_size: 24,
      rope_theta: 500000,
      rope_scaling: null,
      attention_bias: false,
      mlp_bias: false,
      hidden_act: 'silu',
      tie_word_embeddings: false,
    });
  });

  it('refuses configs transformers cannot express', () => {
    const e = thrown(() => hfModelType({ ...LLAMA, qkvBias: false, oBias: true }));
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toContain('attention_bias sets q/k/v and o biases together');
    expect(() => hfModelType({ ...GPT2, mlpBias: false })).toThrow(
      'GPT-2 has biases on every projection',
    );
  });
});
