import { TroupeError } from '../../errors.js';
import {
  type DropoutRates,
  gpt2Config,
  type HfModelType,
  type LayerAttention,
  layerAttention,
  llamaConfig,
  type ModelConfig,
  NO_DROPOUT,
  type RopeScaling,
  validateConfig,
} from '../config.js';
import type { WriteDtype } from './dtypes.js';
import { badCheckpoint } from './tensor32.js';

/**
 * Hugging Face `config.json` ↔ `ModelConfig`, for the model types of `HF_MODEL_TYPES`. Defaults
 * for absent fields are those of the transformers 5 config classes (`save_pretrained` omits some
 * fields equal to them); transformers 4 spellings (`rope_scaling`, `rope_theta`,
 * `rope_local_base_freq`, `sliding_window_pattern`) are read too.
 *
 * Every field of the file is accounted for: read into the config, or on a list of fields that do
 * not change the maths (`INERT`: bookkeeping, generation defaults, initialisation). Any other
 * field is refused by name, so a checkpoint is never run with part of its model ignored.
 */
export type { HfModelType };

/** Which Troupe family (name layout) each `model_type` uses. */
export const HF_FAMILY: Readonly<Record<HfModelType, ModelConfig['family']>> = {
  gpt2: 'gpt2',
  llama: 'llama',
  qwen2: 'llama',
  qwen3: 'llama',
  mistral: 'llama',
  gemma2: 'llama',
  gemma3_text: 'llama',
  phi3: 'phi3',
};

export const HF_MODEL_TYPES = Object.keys(HF_FAMILY) as HfModelType[];

const ARCHITECTURE: Readonly<Record<HfModelType, string>> = {
  gpt2: 'GPT2LMHeadModel',
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  mistral: 'MistralForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  phi3: 'Phi3ForCausalLM',
};

/** The `…ForSequenceClassification` class of each type (a reward model's export). */
export const SEQUENCE_CLASSIFIER: Readonly<Record<HfModelType, string>> = {
  gpt2: 'GPT2ForSequenceClassification',
  llama: 'LlamaForSequenceClassification',
  qwen2: 'Qwen2ForSequenceClassification',
  qwen3: 'Qwen3ForSequenceClassification',
  mistral: 'MistralForSequenceClassification',
  gemma2: 'Gemma2ForSequenceClassification',
  gemma3_text: 'Gemma3TextForSequenceClassification',
  phi3: 'Phi3ForSequenceClassification',
};

/**
 * Fields of any config.json that do not change the model's function: bookkeeping, output
 * switches, the generation defaults transformers 4 kept in config.json, initialisation, the
 * storage dtype (Troupe computes in float32), attention kernels, labels of a classifier head.
 */
const INERT_COMMON = new Set([
  '_name_or_path',
  '_attn_implementation',
  '_attn_implementation_autoset',
  '_commit_hash',
  'architectures',
  'auto_map',
  'transformers_version',
  'torch_dtype',
  'dtype',
  'use_cache',
  'return_dict',
  'output_attentions',
  'output_hidden_states',
  'output_scores',
  'return_dict_in_generate',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'initializer_range',
  'chunk_size_feed_forward',
  'pruned_heads',
  'id2label',
  'label2id',
  'num_labels',
  'problem_type',
  'finetuning_task',
  'task_specific_params',
  'tokenizer_class',
  'prefix',
  'sep_token_id',
  'decoder_start_token_id',
  'is_decoder',
  'is_encoder_decoder',
  'tie_encoder_decoder',
  'cross_attention_hidden_size',
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'num_beam_groups',
  'diversity_penalty',
  'temperature',
  'top_k',
  'top_p',
  'typical_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size',
  'bad_words_ids',
  'num_return_sequences',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'remove_invalid_values',
  'exponential_decay_length_penalty',
  'suppress_tokens',
  'begin_suppress_tokens',
  'cache_implementation',
  'pretraining_tp', // Llama: the same matmuls split into slices (reproduces rounding, not maths)
]);

/** Per type: fields that are inert for that type only. */
const INERT_BY_TYPE: Readonly<Partial<Record<HfModelType, readonly string[]>>> = {
  // GPT-2: the summary head belongs to GPT2DoubleHeadsModel; n_ctx is n_positions' old name;
  // reorder_and_upcast_attn only changes fp16 rounding
  gpt2: [
    'summary_type',
    'summary_use_proj',
    'summary_activation',
    'summary_proj_to_labels',
    'summary_first_dropout',
    'n_ctx',
    'reorder_and_upcast_attn',
  ],
  // Qwen2/3: max_window_layers only places sliding layers when use_sliding_window is on (read then)
  qwen2: ['max_window_layers'],
  qwen3: ['max_window_layers'],
  // transformers 5 Phi-3 applies no embedding dropout (embd_pdrop is kept for older versions)
  phi3: ['embd_pdrop'],
  gemma3_text: ['_sliding_window_pattern'],
};

function unsupported(source: string, field: string, what: string): TroupeError {
  return new TroupeError('UNSUPPORTED', `${source}: '${field}' ${what}`, {
    details: { file: source, field },
  });
}

type Raw = Record<string, unknown>;

/** Typed reads of config.json fields; errors name the file and the field; reads are recorded. */
class Fields {
  readonly read = new Set<string>();
  constructor(
    readonly raw: Raw,
    readonly source: string,
    /** Where this object sits in the file (`rope_parameters.` for a nested one). */
    readonly path = '',
  ) {}

  private bad(field: string, want: string): TroupeError {
    const got = JSON.stringify(this.raw[field]);
    return badCheckpoint(this.source, `field '${this.path}${field}' must be ${want}, got ${got}`, {
      field: `${this.path}${field}`,
    });
  }
  private get(field: string): unknown {
    this.read.add(field);
    return this.raw[field];
  }
  has(field: string): boolean {
    this.read.add(field);
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }
  /** A required positive integer. */
  int(field: string): number {
    const v = this.get(field);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) throw this.bad(field, 'a positive integer');
    return v as number;
  }
  /** A positive integer, or undefined when absent/null. */
  optInt(field: string): number | undefined {
    return this.has(field) ? this.int(field) : undefined;
  }
  num(field: string, fallback: number): number {
    const v = this.get(field) ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(field, 'a finite number');
    return v;
  }
  optNum(field: string): number | undefined {
    return this.has(field) ? this.num(field, 0) : undefined;
  }
  /** A probability in [0, 1). */
  rate(field: string, fallback: number): number {
    const v = this.num(field, fallback);
    if (!(v >= 0 && v < 1)) throw this.bad(field, 'a probability in [0, 1)');
    return v;
  }
  bool(field: string, fallback: boolean): boolean {
    const v = this.get(field) ?? fallback;
    if (typeof v !== 'boolean') throw this.bad(field, 'true or false');
    return v;
  }
  str(field: string, fallback: string): string {
    const v = this.get(field) ?? fallback;
    if (typeof v !== 'string') throw this.bad(field, 'a string');
    return v;
  }
  obj(field: string): Raw | undefined {
    const v = this.get(field);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) throw this.bad(field, 'an object');
    return v as Raw;
  }
  /** A positive integer; `fallback` when the field is absent, undefined when it is null. */
  intOrNull(field: string, fallback: number | undefined): number | undefined {
    if (!(field in this.raw)) {
      this.read.add(field);
      return fallback;
    }
    return this.optInt(field);
  }
  strings(field: string): string[] | undefined {
    const v = this.get(field);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      throw this.bad(field, 'a list of strings');
    return v as string[];
  }
  /** bos/eos/pad token ids, those present; eos may be a list (Llama 3.1 stops on three). */
  tokens(): Pick<ModelConfig, 'bosTokenId' | 'eosTokenId' | 'eosTokenIds' | 'padTokenId'> {
    const out: {
      bosTokenId?: number;
      eosTokenId?: number;
      eosTokenIds?: readonly number[];
      padTokenId?: number;
    } = {};
    const id = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    for (const [field, key] of [
      ['bos_token_id', 'bosTokenId'],
      ['eos_token_id', 'eosTokenId'],
      ['pad_token_id', 'padTokenId'],
    ] as const) {
      const v = this.get(field);
      if (v === undefined || v === null) continue;
      if (field === 'eos_token_id' && Array.isArray(v)) {
        if (v.length === 0 || !v.every(id)) throw this.bad(field, 'a token id or a list of them');
        out.eosTokenId = v[0] as number;
        if (v.length > 1) out.eosTokenIds = v as number[];
        continue;
      }
      if (!id(v)) throw this.bad(field, 'a token id');
      out[key] = v as number;
    }
    return out;
  }
  /** Fields neither read nor inert: refused by name. */
  checkAllRead(inert: ReadonlySet<string>, type: string): void {
    const left = Object.keys(this.raw).filter((k) => !this.read.has(k) && !inert.has(k));
    if (left.length === 0) return;
    const shown = left.map((k) => `'${this.path}${k}'`).join(', ');
    throw new TroupeError(
      'UNSUPPORTED',
      `${this.source}: ${left.length === 1 ? 'field' : 'fields'} ${shown} of this ${type} config ` +
        `${left.length === 1 ? 'is' : 'are'} not supported: Troupe does not know whether ` +
        `${left.length === 1 ? 'it changes' : 'they change'} the model, so it refuses rather than ignore ` +
        `${left.length === 1 ? 'it' : 'them'}`,
      { details: { file: this.source, field: `${this.path}${left[0]}`, fields: left } },
    );
  }
}

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'llama3'] as const;

/** One RoPE dict (`rope_parameters`, or transformers 4's `rope_scaling`) → theta and scaling. */
function readRopeDict(
  r: Fields,
  fallbackTheta: number,
  top: Fields,
): { theta: number; scaling?: RopeScaling; partial?: number } {
  const type = r.has('rope_type') ? r.str('rope_type', '') : r.str('type', 'default');
  r.has('type'); // transformers 4 wrote both
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new TroupeError(
      'UNSUPPORTED',
      `${r.source}: '${r.path}rope_type' is '${type}'; supported RoPE types: ${ROPE_TYPES.join(', ')}`,
      { details: { file: r.source, field: `${r.path}rope_type`, known: [...ROPE_TYPES] } },
    );
  }
  const theta = r.num('rope_theta', fallbackTheta);
  const partial = r.optNum('partial_rotary_factor');
  // Phi-3 keeps the pretraining length beside rope_parameters; transformers prefers it there
  const original = () =>
    top.optInt('original_max_position_embeddings') ??
    r.optInt('original_max_position_embeddings') ??
    top.int('max_position_embeddings');
  const factor = () => r.num('factor', Number.NaN);
  let scaling: RopeScaling | undefined;
  switch (type) {
    case 'default':
      scaling = undefined;
      break;
    case 'linear':
    case 'dynamic':
      scaling = { type, factor: factor() };
      break;
    case 'llama3':
      scaling = {
        type,
        factor: factor(),
        lowFreqFactor: r.num('low_freq_factor', Number.NaN),
        highFreqFactor: r.num('high_freq_factor', Number.NaN),
        originalMaxPositions: original(),
      };
      break;
    case 'yarn': {
      const originalMaxPositions = original();
      const f = r.optNum('factor') ?? top.int('max_position_embeddings') / originalMaxPositions;
      scaling = {
        type,
        factor: f,
        originalMaxPositions,
        attentionFactor: r.optNum('attention_factor'),
        betaFast: r.optNum('beta_fast'),
        betaSlow: r.optNum('beta_slow'),
        mscale: r.optNum('mscale'),
        mscaleAllDim: r.optNum('mscale_all_dim'),
        truncate: r.has('truncate') ? r.bool('truncate', true) : undefined,
      };
      break;
    }
  }
  r.checkAllRead(new Set(), `RoPE (${type})`);
  return { theta, scaling, partial };
}

/** The RoPE of a config with one RoPE for all layers: theta, scaling, partial rotary. */
function readRope(
  f: Fields,
  defaultTheta: number,
): { ropeTheta: number; ropeScaling?: RopeScaling; partialRotary: number } {
  const params = f.obj('rope_parameters');
  const legacy = f.obj('rope_scaling');
  const theta = f.num('rope_theta', defaultTheta);
  const topPartial = f.optNum('partial_rotary_factor');
  // transformers 5: rope_scaling, when present, replaces rope_parameters
  const dict = legacy ?? params;
  const path = legacy ? 'rope_scaling.' : 'rope_parameters.';
  const r = dict
    ? readRopeDict(new Fields(dict, f.source, path), theta, f)
    : { theta, scaling: undefined, partial: undefined };
  return {
    ropeTheta: r.theta,
    ropeScaling: r.scaling,
    partialRotary: r.partial ?? topPartial ?? 1,
  };
}

/** Layer kinds from `layer_types` (transformers' names) or the family's default pattern. */
function readLayerTypes(
  f: Fields,
  layers: number,
  fallback: (i: number) => LayerAttention,
): LayerAttention[] {
  const given = f.strings('layer_types');
  if (given === undefined) return Array.from({ length: layers }, (_, i) => fallback(i));
  return given.map((t, i) => {
    if (t === 'full_attention') return 'full';
    if (t === 'sliding_attention') return 'sliding';
    throw unsupported(
      f.source,
      'layer_types',
      `entry ${i} is '${t}'; supported: full_attention, sliding_attention`,
    );
  });
}

/** GPT-2 activations equal to Troupe's GELU-tanh. */
const GELU_TANH = ['gelu_new', 'gelu_pytorch_tanh'];

/** The gated MLP an activation makes: SiLU → SwiGLU, GELU-tanh → GeGLU. */
function gatedMlp(f: Fields, field: string, fallback: string): 'swiglu' | 'geglu' {
  const act = f.str(field, fallback);
  if (act === 'silu' || act === 'swish') return 'swiglu';
  if (GELU_TANH.includes(act)) return 'geglu';
  throw unsupported(
    f.source,
    field,
    `is '${act}'; supported: silu (SwiGLU), ${GELU_TANH.join(', ')} (GeGLU with GELU-tanh)`,
  );
}

function importGpt2(f: Fields): ModelConfig {
  const act = f.str('activation_function', 'gelu_new');
  if (!GELU_TANH.includes(act)) {
    throw unsupported(
      f.source,
      'activation_function',
      `is '${act}'; Troupe's GPT-2 MLP is GELU-tanh (${GELU_TANH.join(' or ')})`,
    );
  }
  if (!f.bool('scale_attn_weights', true) || f.bool('scale_attn_by_inverse_layer_idx', false)) {
    throw unsupported(
      f.source,
      'scale_attn_weights',
      'asks for non-standard attention scaling, which is not supported',
    );
  }
  if (f.bool('add_cross_attention', false))
    throw unsupported(f.source, 'add_cross_attention', 'is true; cross-attention is not supported');
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
    dropout: {
      embedding: f.rate('embd_pdrop', 0.1),
      attention: f.rate('attn_pdrop', 0.1),
      residual: f.rate('resid_pdrop', 0.1),
    },
    ...f.tokens(),
  });
}

/** What every Llama-style config has: sizes, norm, MLP, RoPE, tokens, tie. */
function llamaCore(f: Fields, type: HfModelType, defaults: { theta: number; tie: boolean }) {
  const hidden = f.int('hidden_size');
  const heads = f.int('num_attention_heads');
  return {
    vocabSize: f.int('vocab_size'),
    hidden,
    layers: f.int('num_hidden_layers'),
    heads,
    kvHeads: f.optInt('num_key_value_heads') ?? heads,
    headDim: f.optInt('head_dim') ?? hidden / heads,
    intermediate: f.int('intermediate_size'),
    maxPositions: f.int('max_position_embeddings'),
    ...readRope(f, defaults.theta),
    tieEmbeddings: f.bool('tie_word_embeddings', defaults.tie),
    modelType: type,
    ...f.tokens(),
  };
}

function importLlamaLike(f: Fields, type: 'llama' | 'qwen2' | 'qwen3' | 'mistral'): ModelConfig {
  const core = llamaCore(f, type, { theta: 10000, tie: false });
  const attnBias = type !== 'qwen2' && type !== 'mistral' && f.bool('attention_bias', false);
  let slidingWindow: number | undefined;
  let layerTypes: LayerAttention[] | undefined;
  if (type === 'mistral') {
    slidingWindow = f.intOrNull('sliding_window', 4096);
  } else if (type === 'qwen2' || type === 'qwen3') {
    // transformers: sliding_window counts only with use_sliding_window; the layers from
    // max_window_layers on slide, unless layer_types says otherwise
    const on = f.bool('use_sliding_window', false);
    const window = f.intOrNull('sliding_window', 4096);
    slidingWindow = on ? window : undefined;
    const from = on ? f.num('max_window_layers', 28) : 0;
    layerTypes = readLayerTypes(f, core.layers, (i) =>
      slidingWindow !== undefined && i >= from ? 'sliding' : 'full',
    );
    if (layerTypes.includes('sliding') && slidingWindow === undefined)
      throw unsupported(
        f.source,
        'layer_types',
        'has sliding_attention layers but use_sliding_window is false or sliding_window is null',
      );
    if (!layerTypes.includes('sliding')) layerTypes = undefined;
  }
  return llamaConfig({
    ...core,
    normEps: f.num('rms_norm_eps', 1e-6),
    mlp: gatedMlp(f, 'hidden_act', 'silu'),
    qkvBias: type === 'qwen2' || attnBias,
    oBias: attnBias,
    mlpBias: type === 'llama' && f.bool('mlp_bias', false),
    qkNorm: type === 'qwen3',
    slidingWindow,
    layerTypes,
    dropout: { ...NO_DROPOUT, attention: f.rate('attention_dropout', 0) },
  });
}

function importGemma(f: Fields, type: 'gemma2' | 'gemma3_text'): ModelConfig {
  const gemma3 = type === 'gemma3_text';
  if (f.bool('use_bidirectional_attention', false)) {
    throw unsupported(
      f.source,
      'use_bidirectional_attention',
      'is true; Troupe runs causal language models only',
    );
  }
  const hidden = f.int('hidden_size');
  const heads = f.int('num_attention_heads');
  const layers = f.int('num_hidden_layers');
  // Gemma 3 keeps one RoPE per layer kind: nested rope_parameters (transformers 5) or
  // rope_theta / rope_scaling for global layers and rope_local_base_freq for sliding ones (4.x)
  let rope: { ropeTheta: number; ropeScaling?: RopeScaling; ropeLocalTheta?: number };
  if (gemma3) {
    const params = f.obj('rope_parameters');
    const nested = params && ('full_attention' in params || 'sliding_attention' in params);
    if (nested) {
      const p = new Fields(params, f.source, 'rope_parameters.');
      const full = readRopeDict(
        new Fields(p.obj('full_attention') ?? {}, f.source, 'rope_parameters.full_attention.'),
        1e6,
        f,
      );
      const local = readRopeDict(
        new Fields(
          p.obj('sliding_attention') ?? {},
          f.source,
          'rope_parameters.sliding_attention.',
        ),
        10000,
        f,
      );
      p.checkAllRead(new Set(), 'Gemma 3 rope_parameters');
      if (local.scaling !== undefined)
        throw unsupported(
          f.source,
          'rope_parameters.sliding_attention',
          'rescales the local RoPE; only the global layers may have rope scaling',
        );
      if (full.partial !== undefined || local.partial !== undefined)
        throw unsupported(f.source, 'rope_parameters', 'partial rotary is not used by Gemma 3');
      rope = { ropeTheta: full.theta, ropeScaling: full.scaling, ropeLocalTheta: local.theta };
    } else {
      const g = readRope(f, 1e6);
      if (g.partialRotary !== 1)
        throw unsupported(f.source, 'partial_rotary_factor', 'is not used by Gemma 3');
      rope = {
        ropeTheta: g.ropeTheta,
        ropeScaling: g.ropeScaling,
        ropeLocalTheta: f.num('rope_local_base_freq', 10000),
      };
    }
  } else {
    const g = readRope(f, 10000);
    if (g.partialRotary !== 1)
      throw unsupported(f.source, 'partial_rotary_factor', 'is not used by Gemma 2');
    rope = { ropeTheta: g.ropeTheta, ropeScaling: g.ropeScaling };
  }
  // transformers 4 Gemma 2 configs carry hidden_act beside hidden_activation; the latter counts
  const actField = f.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  if (actField === 'hidden_activation') f.has('hidden_act');
  const mlp = gatedMlp(f, actField, 'gelu_pytorch_tanh');
  const pattern = f.num('sliding_window_pattern', gemma3 ? 6 : 2);
  const slidingWindow = f.intOrNull('sliding_window', 4096);
  const layerTypes = readLayerTypes(f, layers, (i) => ((i + 1) % pattern ? 'sliding' : 'full'));
  if (layerTypes.includes('sliding') && slidingWindow === undefined)
    throw unsupported(f.source, 'sliding_window', 'is null, but some layers are sliding_attention');
  const attnSoftcap = f.optNum('attn_logit_softcapping');
  if (gemma3 && attnSoftcap !== undefined)
    throw unsupported(
      f.source,
      'attn_logit_softcapping',
      'is set, but transformers does not apply it to Gemma 3 attention (set it to null)',
    );
  const attnBias = f.bool('attention_bias', false);
  const headDim = f.optInt('head_dim') ?? hidden / heads;
  return validateConfig({
    family: 'llama',
    modelType: type,
    vocabSize: f.int('vocab_size'),
    hidden,
    layers,
    heads,
    kvHeads: f.optInt('num_key_value_heads') ?? heads,
    headDim,
    intermediate: f.int('intermediate_size'),
    maxPositions: f.int('max_position_embeddings'),
    norm: 'rmsnorm',
    normEps: f.num('rms_norm_eps', 1e-6),
    normUnitOffset: true,
    mlp,
    positions: 'rope',
    ...rope,
    qkvBias: attnBias,
    oBias: attnBias,
    mlpBias: false,
    qkNorm: gemma3,
    sandwichNorms: true,
    embedScale: Math.fround(Math.sqrt(hidden)),
    queryScale: f.num('query_pre_attn_scalar', 256) ** -0.5,
    attnSoftcap,
    finalSoftcap: f.optNum('final_logit_softcapping'),
    slidingWindow,
    layerTypes,
    dropout: { ...NO_DROPOUT, attention: f.rate('attention_dropout', 0) },
    tieEmbeddings: f.bool('tie_word_embeddings', true),
    ...f.tokens(),
  });
}

function importPhi3(f: Fields): ModelConfig {
  const core = llamaCore(f, 'phi3', { theta: 10000, tie: false });
  f.has('original_max_position_embeddings'); // read by the RoPE types that rescale; inert otherwise
  if (core.ropeScaling !== undefined && core.ropeScaling.type === 'dynamic')
    throw unsupported(f.source, 'rope_parameters', "of type 'dynamic' is not used by Phi-3");
  const act = gatedMlp(f, 'hidden_act', 'silu');
  return validateConfig({
    ...core,
    family: 'phi3',
    norm: 'rmsnorm',
    normEps: f.num('rms_norm_eps', 1e-5),
    mlp: act,
    positions: 'rope',
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    slidingWindow: f.optInt('sliding_window'),
    dropout: {
      embedding: 0,
      attention: f.rate('attention_dropout', 0),
      residual: f.rate('resid_pdrop', 0),
    },
  });
}

const IMPORTERS: ReadonlyMap<HfModelType, (f: Fields) => ModelConfig> = new Map([
  ['gpt2', importGpt2],
  ['llama', (f: Fields) => importLlamaLike(f, 'llama')],
  ['qwen2', (f: Fields) => importLlamaLike(f, 'qwen2')],
  ['qwen3', (f: Fields) => importLlamaLike(f, 'qwen3')],
  ['mistral', (f: Fields) => importLlamaLike(f, 'mistral')],
  ['gemma2', (f: Fields) => importGemma(f, 'gemma2')],
  ['gemma3_text', (f: Fields) => importGemma(f, 'gemma3_text')],
  ['phi3', importPhi3],
]);

/** Model types that are close to one Troupe reads, with what to do instead. */
const NEAR_MISSES: Readonly<Record<string, string>> = {
  gemma3:
    'a multimodal Gemma 3 (Gemma3ForConditionalGeneration); Troupe runs the text model: a checkpoint with model_type gemma3_text (e.g. Gemma 3 1B)',
  gemma: 'Gemma 1 is not supported; Gemma 2 (gemma2) and Gemma 3 text (gemma3_text) are',
};

/** A `ModelConfig` from a parsed config.json; `source` names the file in errors. */
export function fromHfConfig(json: unknown, source = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw badCheckpoint(source, 'config must be a JSON object');
  }
  const f = new Fields(json as Raw, source);
  const type = f.str('model_type', '');
  const importer = IMPORTERS.get(type as HfModelType);
  if (importer === undefined) {
    const known = [...IMPORTERS.keys()];
    const hint = NEAR_MISSES[type] ? ` (${NEAR_MISSES[type]})` : '';
    throw new TroupeError(
      'UNKNOWN_NAME',
      `${source}: unknown model_type ${JSON.stringify(json && (json as Raw).model_type)}${hint}. Supported: ${known.join(', ')}.`,
      { details: { file: source, field: 'model_type', name: type, known } },
    );
  }
  if (f.has('quantization_config')) {
    throw unsupported(
      source,
      'quantization_config',
      'is set: quantized checkpoints are not supported; load the unquantized weights',
    );
  }
  const arch = (json as Raw).architectures;
  const classifier =
    Array.isArray(arch) && arch.some((a) => /ForSequenceClassification$/.test(String(a)));
  const id2label = (json as Raw).id2label;
  const labels =
    (json as Raw).num_labels ??
    (typeof id2label === 'object' && id2label !== null ? Object.keys(id2label).length : 1);
  if (classifier && labels !== 1) {
    throw unsupported(
      source,
      'id2label',
      `gives a classifier with ${labels} labels; Troupe reads reward models, which have one (num_labels: 1)`,
    );
  }
  let config: ModelConfig;
  try {
    config = importer(f);
  } catch (e) {
    if (!(e instanceof TroupeError) || e.code !== 'BAD_ARGUMENT') throw e;
    throw badCheckpoint(
      source,
      `describes an invalid model: ${e.message}`,
      { field: e.details.field as string },
      e,
    );
  }
  f.checkAllRead(new Set([...INERT_COMMON, ...(INERT_BY_TYPE[type as HfModelType] ?? [])]), type);
  // a type the switches imply on their own is not recorded (configs stay as a builder makes them)
  if (config.modelType !== undefined && inferType(config) === config.modelType) {
    const { modelType: _, ...rest } = config;
    return validateConfig(rest);
  }
  return config;
}

/** The sizes a fresh model is given; everything else is its transformers config class's default. */
export interface FreshSizes {
  readonly vocabSize: number;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads?: number;
  readonly headDim?: number;
  readonly intermediate: number;
  readonly maxPositions: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
}

/**
 * A fresh model of a transformers `model_type`: exactly what that type's config class gives for
 * these sizes (its defaults for RoPE base, norms, windows, soft-caps, tying), so a model
 * pretrained from scratch as `qwen3` or `gemma2` is that architecture. Gemma's query scalar is the
 * head width (its default 256 belongs to its own head width).
 */
export function freshConfig(type: HfModelType, s: FreshSizes): ModelConfig {
  const headDim = s.headDim ?? s.hidden / s.heads;
  const tokens = {
    bos_token_id: s.bosTokenId,
    eos_token_id: s.eosTokenId,
    pad_token_id: s.padTokenId,
  };
  const json: Raw =
    type === 'gpt2'
      ? {
          n_embd: s.hidden,
          n_layer: s.layers,
          n_head: s.heads,
          n_inner: s.intermediate,
          n_positions: s.maxPositions,
        }
      : {
          hidden_size: s.hidden,
          num_hidden_layers: s.layers,
          num_attention_heads: s.heads,
          num_key_value_heads: s.kvHeads ?? s.heads,
          head_dim: headDim,
          intermediate_size: s.intermediate,
          max_position_embeddings: s.maxPositions,
          ...(type === 'gemma2' || type === 'gemma3_text'
            ? { query_pre_attn_scalar: headDim }
            : {}),
        };
  return fromHfConfig(
    { model_type: type, vocab_size: s.vocabSize, ...json, ...tokens },
    `a fresh ${type} model`,
  );
}

function cannot(c: ModelConfig, what: string): TroupeError {
  return new TroupeError(
    'UNSUPPORTED',
    `Cannot export this model as a transformers config: ${what}`,
    {
      details: { family: c.family, modelType: c.modelType },
    },
  );
}

const isDefaultScale = (c: ModelConfig) =>
  Math.abs(c.queryScale * Math.sqrt(c.headDim) - 1) < 1e-12;

/**
 * The transformers `model_type` a config exports as: its own `modelType` when it has one (checked
 * against its switches), else inferred: GPT-2 for the gpt2 family; Phi-3 for the phi3 family; for
 * the llama family Gemma 2/3 with sandwich norms, Qwen3 with q/k norms, Mistral with a sliding
 * window on every layer, Qwen2 when only q/k/v have biases, else Llama.
 */
export function hfModelType(c: ModelConfig): HfModelType {
  const type = c.modelType ?? inferType(c);
  checkExportable(c, type);
  return type;
}

function inferType(c: ModelConfig): HfModelType {
  if (c.family === 'gpt2') return 'gpt2';
  if (c.family === 'phi3') return 'phi3';
  if (c.sandwichNorms) return c.qkNorm ? 'gemma3_text' : 'gemma2';
  if (c.qkNorm) return 'qwen3';
  if (c.slidingWindow !== undefined && c.layerTypes === undefined) return 'mistral';
  if (c.qkvBias && !c.oBias && !c.mlpBias) return 'qwen2';
  return 'llama';
}

/** Refuse a config whose switches the chosen transformers class cannot express. */
function checkExportable(c: ModelConfig, type: HfModelType): void {
  const need = (ok: boolean, what: string) => {
    if (!ok) throw cannot(c, `${type} ${what}`);
  };
  need(
    HF_FAMILY[type] === c.family,
    `uses the ${HF_FAMILY[type]} parameter layout, not ${c.family}`,
  );
  if (type === 'gpt2') {
    need(
      c.norm === 'layernorm' && c.mlp === 'gelu' && c.positions === 'learned',
      'needs layernorm, gelu MLP and learned positions',
    );
    need(c.qkvBias && c.oBias && c.mlpBias, 'has biases on every projection');
    need(
      c.kvHeads === c.heads && c.heads * c.headDim === c.hidden,
      'needs kvHeads = heads and heads·headDim = hidden',
    );
    need(
      c.slidingWindow === undefined && !c.qkNorm && !c.sandwichNorms,
      'has no sliding window, q/k norms or sandwich norms',
    );
    need(
      c.embedScale === 1 &&
        isDefaultScale(c) &&
        c.finalSoftcap === undefined &&
        c.attnSoftcap === undefined,
      'has no embedding scale, query scale or soft-caps',
    );
    return;
  }
  need(
    c.norm === 'rmsnorm' && c.mlp !== 'gelu' && c.positions === 'rope',
    'needs rmsnorm, a gated MLP and rope positions',
  );
  const gemma = type === 'gemma2' || type === 'gemma3_text';
  need(
    c.sandwichNorms === gemma && c.normUnitOffset === gemma,
    gemma ? 'has (1 + w) sandwich norms' : 'has no (1 + w) or sandwich norms',
  );
  need(
    c.qkNorm === (type === 'qwen3' || type === 'gemma3_text'),
    c.qkNorm ? 'has no q/k norms' : 'needs q/k norms',
  );
  if (gemma) {
    need(c.embedScale === Math.fround(Math.sqrt(c.hidden)), 'scales embeddings by √hidden');
    need(
      !c.mlpBias && c.qkvBias === c.oBias,
      'has attention_bias on q, k, v and o together and no MLP biases',
    );
    need(type === 'gemma2' || c.attnSoftcap === undefined, 'applies no attention soft-cap');
  } else {
    need(
      c.embedScale === 1 &&
        isDefaultScale(c) &&
        c.attnSoftcap === undefined &&
        c.finalSoftcap === undefined,
      'has no embedding scale, query scale or soft-caps',
    );
    need(c.ropeLocalTheta === undefined, 'has one RoPE for every layer');
  }
  if (type !== 'gemma3_text') need(c.ropeLocalTheta === undefined, 'has one RoPE for every layer');
  if (type !== 'phi3') need(c.partialRotary === 1, 'rotates whole heads');
  if (type === 'llama') {
    need(c.slidingWindow === undefined, 'has no sliding window');
    need(
      c.qkvBias === c.oBias,
      `sets q/k/v and o biases together with attention_bias (qkvBias ${c.qkvBias}, oBias ${c.oBias})`,
    );
  }
  if (type === 'qwen2' || type === 'qwen3')
    need(
      !c.oBias && !c.mlpBias && c.qkvBias === (type === 'qwen2'),
      type === 'qwen2' ? 'has biases on q, k, v only' : 'has no biases',
    );
  if (type === 'mistral' || type === 'phi3') {
    need(
      c.layerTypes === undefined || c.layerTypes.every((t) => t === 'sliding'),
      'slides every layer or none',
    );
    need(!c.qkvBias && !c.oBias && !c.mlpBias, 'has no biases');
  }
  if (type === 'qwen2' || type === 'qwen3') {
    // layer_types and sliding_window: any pattern transformers can write
    need(
      c.slidingWindow === undefined || c.layerTypes !== undefined,
      'slides the layers layer_types names',
    );
  }
}

/** The `rope_parameters` dict (transformers 5) of one RoPE. */
function ropeParameters(theta: number, s: RopeScaling | undefined, partial?: number): Raw {
  const base: Raw = { rope_theta: theta, rope_type: s?.type ?? 'default' };
  if (partial !== undefined && partial !== 1) base.partial_rotary_factor = partial;
  if (s === undefined) return base;
  switch (s.type) {
    case 'linear':
    case 'dynamic':
      return { ...base, factor: s.factor };
    case 'llama3':
      return {
        ...base,
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositions,
      };
    case 'yarn': {
      const opt: Raw = {
        attention_factor: s.attentionFactor,
        beta_fast: s.betaFast,
        beta_slow: s.betaSlow,
        mscale: s.mscale,
        mscale_all_dim: s.mscaleAllDim,
        truncate: s.truncate,
      };
      for (const k of Object.keys(opt)) if (opt[k] === undefined) delete opt[k];
      return {
        ...base,
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositions,
        ...opt,
      };
    }
  }
}

const HF_LAYER: Readonly<Record<LayerAttention, string>> = {
  full: 'full_attention',
  sliding: 'sliding_attention',
};

/** `query_pre_attn_scalar` from the query scale (an integer where it is one). */
function queryPreAttnScalar(c: ModelConfig): number {
  const s = c.queryScale ** -2;
  const r = Math.round(s);
  return Math.abs(s - r) <= 1e-9 * Math.max(1, r) ? r : s;
}

export interface HfConfigOptions {
  dtype?: WriteDtype;
  /** Export as `…ForSequenceClassification` with one label (a reward model with a `score` head). */
  sequenceClassification?: boolean;
}

/**
 * A config.json object transformers loads (`AutoConfig`, `AutoModelForCausalLM`, or
 * `AutoModelForSequenceClassification` with `sequenceClassification`): every field that
 * changes the maths written out, the dropout rates as trained, token ids, the dtype.
 */
export function toHfConfig(c: ModelConfig, options: HfConfigOptions = {}): Raw {
  const type = hfModelType(c);
  const dtype = options.dtype === 'BF16' ? 'bfloat16' : 'float32';
  const eos = c.eosTokenIds && c.eosTokenIds.length > 1 ? [...c.eosTokenIds] : c.eosTokenId;
  const head: Raw = {
    architectures: [
      options.sequenceClassification ? SEQUENCE_CLASSIFIER[type] : ARCHITECTURE[type],
    ],
    model_type: type,
    dtype,
    torch_dtype: dtype,
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId ?? null,
    eos_token_id: eos ?? null,
    pad_token_id: c.padTokenId ?? null,
    ...(options.sequenceClassification
      ? { num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } }
      : {}),
  };
  if (type === 'gpt2') {
    return {
      ...head,
      n_embd: c.hidden,
      n_layer: c.layers,
      n_head: c.heads,
      n_inner: c.intermediate === 4 * c.hidden ? null : c.intermediate,
      n_positions: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: 'gelu_new',
      embd_pdrop: c.dropout.embedding,
      attn_pdrop: c.dropout.attention,
      resid_pdrop: c.dropout.residual,
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
    };
  }
  const act = c.mlp === 'swiglu' ? 'silu' : 'gelu_pytorch_tanh';
  const body: Raw = {
    ...head,
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    attention_dropout: c.dropout.attention,
  };
  const layerTypes = Array.from({ length: c.layers }, (_, l) => HF_LAYER[layerAttention(c, l)]);
  switch (type) {
    case 'llama':
      return {
        ...body,
        hidden_act: act,
        attention_bias: c.qkvBias,
        mlp_bias: c.mlpBias,
        rope_parameters: ropeParameters(c.ropeTheta, c.ropeScaling),
      };
    case 'mistral':
      return {
        ...body,
        hidden_act: act,
        sliding_window: c.slidingWindow ?? null,
        rope_parameters: ropeParameters(c.ropeTheta, c.ropeScaling),
      };
    case 'qwen2':
    case 'qwen3':
      return {
        ...body,
        hidden_act: act,
        ...(type === 'qwen3' ? { attention_bias: false } : {}),
        use_sliding_window: c.slidingWindow !== undefined,
        sliding_window: c.slidingWindow ?? null,
        max_window_layers: c.layers,
        layer_types: layerTypes,
        rope_parameters: ropeParameters(c.ropeTheta, c.ropeScaling),
      };
    case 'phi3':
      return {
        ...body,
        hidden_act: act,
        resid_pdrop: c.dropout.residual,
        embd_pdrop: 0,
        sliding_window: c.slidingWindow ?? null,
        original_max_position_embeddings:
          c.ropeScaling && 'originalMaxPositions' in c.ropeScaling
            ? c.ropeScaling.originalMaxPositions
            : c.maxPositions,
        partial_rotary_factor: c.partialRotary,
        rope_parameters: ropeParameters(c.ropeTheta, c.ropeScaling, c.partialRotary),
      };
    case 'gemma2':
    case 'gemma3_text':
      return {
        ...body,
        hidden_activation: act,
        attention_bias: c.qkvBias,
        query_pre_attn_scalar: queryPreAttnScalar(c),
        sliding_window: c.slidingWindow ?? null,
        layer_types: layerTypes,
        attn_logit_softcapping: c.attnSoftcap ?? null,
        final_logit_softcapping: c.finalSoftcap ?? null,
        use_bidirectional_attention: false,
        rope_parameters:
          type === 'gemma2'
            ? ropeParameters(c.ropeTheta, c.ropeScaling)
            : {
                full_attention: ropeParameters(c.ropeTheta, c.ropeScaling),
                sliding_attention: ropeParameters(c.ropeLocalTheta ?? c.ropeTheta, undefined),
              },
      };
  }
}

/**
 * Fields transformers types as float (its config classes are strict dataclasses: a soft-cap of
 * `4` is refused where `4.0` is taken). JSON has one number type, so these are written with a
 * decimal point.
 */
const FLOAT_FIELDS = [
  'rms_norm_eps',
  'layer_norm_epsilon',
  'rope_theta',
  'rope_local_base_freq',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'attention_factor',
  'beta_fast',
  'beta_slow',
  'mscale',
  'mscale_all_dim',
  'partial_rotary_factor',
  'attn_logit_softcapping',
  'final_logit_softcapping',
  'attention_dropout',
  'embd_pdrop',
  'attn_pdrop',
  'resid_pdrop',
];
const FLOAT_FIELD = new RegExp(`("(?:${FLOAT_FIELDS.join('|')})": )(-?\\d+)(?=,?\\n)`, 'g');

/** A config object as config.json text (2-space indent), floats written as floats. */
export function hfConfigJson(config: Raw): string {
  return `${JSON.stringify(config, null, 2).replace(FLOAT_FIELD, '$1$2.0')}\n`;
}

/** generation_config.json: the token ids generation starts, stops and pads with. */
export function toHfGenerationConfig(c: ModelConfig): Raw {
  const eos = c.eosTokenIds && c.eosTokenIds.length > 1 ? [...c.eosTokenIds] : c.eosTokenId;
  const out: Raw = { _from_model_config: true };
  if (c.bosTokenId !== undefined) out.bos_token_id = c.bosTokenId;
  if (eos !== undefined) out.eos_token_id = eos;
  if (c.padTokenId !== undefined) out.pad_token_id = c.padTokenId;
  return out;
}

export type { DropoutRates };
