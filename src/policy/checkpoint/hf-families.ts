import {
  gpt2Config,
  type HfModelType,
  type LayerAttention,
  llamaConfig,
  type ModelConfig,
  NO_DROPOUT,
  type RopeScaling,
  validateConfig,
} from '../config.js';
import { Fields, unsupported } from './hf-fields.js';
import { readRope, readRopeDict } from './hf-rope.js';

/*
 * One importer per transformers model type (hf-config.ts's IMPORTERS): its config.json fields,
 * with that config class's defaults, into a ModelConfig.
 */

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

export function importGpt2(f: Fields): ModelConfig {
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

export function importLlamaLike(
  f: Fields,
  type: 'llama' | 'qwen2' | 'qwen3' | 'mistral',
): ModelConfig {
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

export function importGemma(f: Fields, type: 'gemma2' | 'gemma3_text'): ModelConfig {
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

export function importPhi3(f: Fields): ModelConfig {
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
