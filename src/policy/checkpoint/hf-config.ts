import { TroupeError } from '../../errors.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../config.js';
import type { WriteDtype } from './dtypes.js';
import { badCheckpoint } from './tensor32.js';

/**
 * Hugging Face `config.json` ↔ `ModelConfig`. Defaults for absent fields are those of the
 * transformers config classes (`save_pretrained` omits some fields equal to them).
 */
export type HfModelType = 'gpt2' | 'llama' | 'qwen2';

/** Which Troupe family (name layout) each `model_type` uses. */
export const HF_FAMILY: Readonly<Record<HfModelType, ModelConfig['family']>> = {
  gpt2: 'gpt2',
  llama: 'llama',
  qwen2: 'llama',
};

const ARCHITECTURE: Readonly<Record<HfModelType, string>> = {
  gpt2: 'GPT2LMHeadModel',
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
};

/** GPT-2 activations equal to Troupe's GELU-tanh MLP. */
const GPT2_ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh'];

function unsupported(source: string, field: string, what: string): TroupeError {
  return new TroupeError('UNSUPPORTED', `${source}: '${field}' ${what}`, {
    details: { file: source, field },
  });
}

/** Typed reads of config.json fields; errors name the file and the field. */
class Fields {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly source: string,
  ) {}

  private bad(field: string, want: string): TroupeError {
    const got = JSON.stringify(this.raw[field]);
    return badCheckpoint(this.source, `field '${field}' must be ${want}, got ${got}`, { field });
  }
  /** A required positive integer. */
  int(field: string): number {
    const v = this.raw[field];
    if (!Number.isSafeInteger(v) || (v as number) <= 0) throw this.bad(field, 'a positive integer');
    return v as number;
  }
  /** A positive integer, or undefined when absent/null. */
  optInt(field: string): number | undefined {
    return this.raw[field] === undefined || this.raw[field] === null ? undefined : this.int(field);
  }
  num(field: string, fallback: number): number {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(field, 'a finite number');
    return v;
  }
  bool(field: string, fallback: boolean): boolean {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'boolean') throw this.bad(field, 'true or false');
    return v;
  }
  str(field: string, fallback: string): string {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'string') throw this.bad(field, 'a string');
    return v;
  }
  /** bos/eos/pad token ids, only those present (a list, as some configs have, is not supported). */
  tokens(): Pick<ModelConfig, 'bosTokenId' | 'eosTokenId' | 'padTokenId'> {
    const out: { bosTokenId?: number; eosTokenId?: number; padTokenId?: number } = {};
    for (const [field, key] of [
      ['bos_token_id', 'bosTokenId'],
      ['eos_token_id', 'eosTokenId'],
      ['pad_token_id', 'padTokenId'],
    ] as const) {
      const v = this.raw[field];
      if (v === undefined || v === null) continue;
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw this.bad(field, 'a token id');
      out[key] = v as number;
    }
    return out;
  }
}

function importGpt2(f: Fields): ModelConfig {
  const act = f.str('activation_function', 'gelu_new');
  if (!GPT2_ACTIVATIONS.includes(act)) {
    throw unsupported(
      f.source,
      'activation_function',
      `is '${act}'; Troupe's GPT-2 MLP is GELU-tanh (${GPT2_ACTIVATIONS.join(' or ')})`,
    );
  }
  if (f.raw.scale_attn_weights === false || f.raw.scale_attn_by_inverse_layer_idx === true) {
    throw unsupported(
      f.source,
      'scale_attn_weights',
      'asks for non-standard attention scaling, which is not supported',
    );
  }
  const hidden = f.int('n_embd');
  return gpt2Config({
    vocabSize: f.int('vocab_size'),
    hidden,
    layers: f.int('n_layer'),
    heads: f.int('n_head'),
    intermediate: f.optInt('n_inner') ?? 4 * hidden,
    maxPositions: f.int('n_positions'),
    normEps: f.num('layer_norm_epsilon', 1e-5),
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    ...f.tokens(),
  });
}

/** RoPE base; plain RoPE only (`rope_scaling: null`, or transformers 5's `rope_parameters` of type default). */
function ropeTheta(f: Fields): number {
  if (f.raw.rope_scaling !== undefined && f.raw.rope_scaling !== null) {
    throw unsupported(
      f.source,
      'rope_scaling',
      `${JSON.stringify(f.raw.rope_scaling)} is not supported yet; only plain RoPE (rope_scaling: null)`,
    );
  }
  const params = f.raw.rope_parameters as Record<string, unknown> | undefined | null;
  if (params !== undefined && params !== null) {
    if ((params.rope_type ?? 'default') !== 'default') {
      throw unsupported(
        f.source,
        'rope_parameters',
        `rope_type '${params.rope_type}' is not supported yet; only 'default'`,
      );
    }
    if (params.rope_theta !== undefined) return new Fields(params, f.source).num('rope_theta', 0);
  }
  return f.num('rope_theta', 10000);
}

function importLlamaLike(f: Fields, type: 'llama' | 'qwen2'): ModelConfig {
  const act = f.str('hidden_act', 'silu');
  if (act !== 'silu')
    throw unsupported(f.source, 'hidden_act', `is '${act}'; only 'silu' (SwiGLU) is supported`);
  if (f.raw.use_sliding_window === true) {
    throw unsupported(
      f.source,
      'use_sliding_window',
      'is true; sliding-window attention is not supported yet',
    );
  }
  const hidden = f.int('hidden_size');
  const heads = f.int('num_attention_heads');
  const attnBias = type === 'llama' && f.bool('attention_bias', false);
  return llamaConfig({
    vocabSize: f.int('vocab_size'),
    hidden,
    layers: f.int('num_hidden_layers'),
    heads,
    kvHeads: f.optInt('num_key_value_heads') ?? heads,
    headDim: f.optInt('head_dim') ?? hidden / heads,
    intermediate: f.int('intermediate_size'),
    maxPositions: f.int('max_position_embeddings'),
    normEps: f.num('rms_norm_eps', 1e-6),
    ropeTheta: ropeTheta(f),
    qkvBias: type === 'qwen2' || attnBias,
    oBias: attnBias,
    mlpBias: type === 'llama' && f.bool('mlp_bias', false),
    tieEmbeddings: f.bool('tie_word_embeddings', false),
    ...f.tokens(),
  });
}

const IMPORTERS: ReadonlyMap<HfModelType, (f: Fields) => ModelConfig> = new Map([
  ['gpt2', importGpt2],
  ['llama', (f: Fields) => importLlamaLike(f, 'llama')],
  ['qwen2', (f: Fields) => importLlamaLike(f, 'qwen2')],
]);

/** A `ModelConfig` from a parsed config.json; `source` names the file in errors. */
export function fromHfConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw badCheckpoint(source, 'config must be a JSON object');
  }
  const f = new Fields(json as Record<string, unknown>, source);
  const type = f.raw.model_type;
  const importer = IMPORTERS.get(type as HfModelType);
  if (importer === undefined) {
    const known = [...IMPORTERS.keys()];
    throw new TroupeError(
      'UNKNOWN_NAME',
      `${source}: unknown model_type ${JSON.stringify(type)}. Supported: ${known.join(', ')}.`,
      { details: { file: source, field: 'model_type', name: type, known } },
    );
  }
  try {
    return importer(f);
  } catch (e) {
    if (!(e instanceof TroupeError) || e.code !== 'BAD_ARGUMENT') throw e;
    throw badCheckpoint(
      source,
      `describes an invalid model: ${e.message}`,
      { field: e.details.field as string },
      e,
    );
  }
}

/**
 * The transformers `model_type` a config exports as: GPT-2 for the gpt2 family; for the llama
 * family Qwen2 when only q/k/v have biases (its fixed layout), else Llama (`attention_bias`
 * covers q, k, v and o together).
 */
export function hfModelType(c: ModelConfig): HfModelType {
  const no = (what: string) =>
    new TroupeError(
      'UNSUPPORTED',
      `Cannot export a ${c.family} config as a transformers model: ${what}`,
      {
        details: { family: c.family },
      },
    );
  if (c.family === 'gpt2') {
    if (c.norm !== 'layernorm' || c.mlp !== 'gelu' || c.positions !== 'learned') {
      throw no('GPT-2 needs layernorm, gelu MLP and learned positions');
    }
    if (!c.qkvBias || !c.oBias || !c.mlpBias) throw no('GPT-2 has biases on every projection');
    if (c.kvHeads !== c.heads || c.heads * c.headDim !== c.hidden) {
      throw no('GPT-2 needs kvHeads = heads and heads·headDim = hidden');
    }
    return 'gpt2';
  }
  if (c.norm !== 'rmsnorm' || c.mlp !== 'swiglu' || c.positions !== 'rope') {
    throw no('Llama/Qwen2 need rmsnorm, swiglu MLP and rope positions');
  }
  if (c.qkvBias && !c.oBias && !c.mlpBias) return 'qwen2';
  if (c.qkvBias !== c.oBias)
    throw no(
      `attention_bias sets q/k/v and o biases together (qkvBias ${c.qkvBias}, oBias ${c.oBias})`,
    );
  return 'llama';
}

/** A config.json object transformers loads (`AutoConfig` / `AutoModelForCausalLM`). */
export function toHfConfig(
  c: ModelConfig,
  options: { dtype?: WriteDtype } = {},
): Record<string, unknown> {
  const type = hfModelType(c);
  const tokens = {
    ...(c.bosTokenId === undefined ? {} : { bos_token_id: c.bosTokenId }),
    ...(c.eosTokenId === undefined ? {} : { eos_token_id: c.eosTokenId }),
    ...(c.padTokenId === undefined ? {} : { pad_token_id: c.padTokenId }),
  };
  const head = {
    architectures: [ARCHITECTURE[type]],
    model_type: type,
    torch_dtype: options.dtype === 'BF16' ? 'bfloat16' : 'float32',
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieEmbeddings,
    ...tokens,
  };
  if (type === 'gpt2') {
    return {
      ...head,
      n_embd: c.hidden,
      n_layer: c.layers,
      n_head: c.heads,
      n_inner: c.intermediate,
      n_positions: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: 'gelu_new',
    };
  }
  return {
    ...head,
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    ...(type === 'llama'
      ? { attention_bias: c.qkvBias, mlp_bias: c.mlpBias }
      : { use_sliding_window: false }),
  };
}
