import { type LayerAttention, layerAttention, type ModelConfig } from '../config.js';
import type { WriteDtype } from './dtypes.js';
import { ropeParameters } from './hf-rope.js';
import { ARCHITECTURE, type Raw, SEQUENCE_CLASSIFIER } from './hf-tables.js';
import { hfModelType } from './hf-type.js';

/*
 * ModelConfig → config.json and generation_config.json that transformers loads (hf-config.ts's
 * other direction).
 */

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
