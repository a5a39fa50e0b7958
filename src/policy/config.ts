import { TroupeError } from '../errors.js';

/*
 * The model config: one typed record with a comment per field (ModelConfig), the builders of
 * GPT-2- and Llama-style configs, and the validation every config passes, each refusal naming
 * its field. (Past 300 lines: the record's field comments are most of it, and the checks read
 * against them.)
 */

/**
 * How RoPE frequencies are rescaled for long contexts, as transformers' `rope_parameters`
 * (`modeling_rope_utils.py`): `linear` (position interpolation), `dynamic` (NTK-aware, the base
 * grows with the sequence past `maxPositions`), `yarn` (frequency bands blended between
 * interpolation and extrapolation, cos/sin scaled by an attention factor) and `llama3`
 * (Llama-3.1's wavelength bands).
 */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'dynamic'; readonly factor: number }
  | {
      readonly type: 'yarn';
      readonly factor: number;
      readonly originalMaxPositions: number;
      /** cos/sin scale; absent: 0.1·ln(factor) + 1 (or the mscale ratio). */
      readonly attentionFactor?: number;
      readonly betaFast?: number;
      readonly betaSlow?: number;
      readonly mscale?: number;
      readonly mscaleAllDim?: number;
      /** Round the correction range to whole dimensions (default true). */
      readonly truncate?: boolean;
    }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

/** Per-layer attention: over every earlier token, or the last `slidingWindow` of them. */
export type LayerAttention = 'full' | 'sliding';

/** Dropout probabilities applied while training (0 = off). */
export interface DropoutRates {
  /** On the input embeddings (GPT-2 `embd_pdrop`). */
  readonly embedding: number;
  /** On the attention probabilities (`attn_pdrop`, `attention_dropout`). */
  readonly attention: number;
  /** On each sub-layer's output before its residual add (`resid_pdrop`). */
  readonly residual: number;
}

/**
 * One typed config for every decoder-only model Troupe runs. GPT-2, Llama (2, 3, 3.1, 3.2),
 * Qwen2, Qwen3, Mistral, Gemma 2 / 3 and Phi-3 differ only in the switches below; each
 * transformers `config.json` field that changes the maths maps onto one of them (see
 * checkpoint/hf-config.ts).
 */
export interface ModelConfig {
  /**
   * Parameter naming on import/export: `gpt2` (Conv1D names), `llama` (Llama / Qwen / Mistral /
   * Gemma names), `phi3` (Llama names with fused `qkv_proj` and `gate_up_proj`).
   */
  readonly family: 'gpt2' | 'llama' | 'phi3';
  /** The transformers `model_type` this config exports as; absent: inferred from the switches. */
  readonly modelType?: HfModelType;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Model width d. */
  readonly hidden: number;
  /** Number of transformer blocks L. */
  readonly layers: number;
  /** Query heads H. */
  readonly heads: number;
  /** Key/value heads (grouped-query attention); `heads` for plain multi-head attention. */
  readonly kvHeads: number;
  /** Width of one head; `hidden / heads` unless a checkpoint says otherwise. */
  readonly headDim: number;
  /** MLP inner width (GPT-2: 4d; Llama: the `intermediate_size`). */
  readonly intermediate: number;
  /** Longest sequence: the learned position table's size, and the RoPE range checked. */
  readonly maxPositions: number;
  readonly norm: 'layernorm' | 'rmsnorm';
  readonly normEps: number;
  /** RMSNorm multiplies by (1 + γ) instead of γ (Gemma; gains are stored around 0). */
  readonly normUnitOffset: boolean;
  /**
   * `gelu` = GPT-2 MLP with GELU-tanh; `swiglu` = down(silu(gate(x)) ⊙ up(x)) (Llama);
   * `geglu` = down(gelu_tanh(gate(x)) ⊙ up(x)) (Gemma).
   */
  readonly mlp: 'gelu' | 'swiglu' | 'geglu';
  /** `learned` absolute positions (GPT-2) or rotary embeddings (Llama, HF rotate-half layout). */
  readonly positions: 'learned' | 'rope';
  /** RoPE base θ (of the global layers, where local ones have their own). */
  readonly ropeTheta: number;
  /** Long-context rescaling of the RoPE frequencies; absent = plain RoPE. */
  readonly ropeScaling?: RopeScaling;
  /** RoPE base of the sliding-window layers (Gemma 3's `rope_local_base_freq`); absent: `ropeTheta` and `ropeScaling`. */
  readonly ropeLocalTheta?: number;
  /** Fraction of each head's width that is rotated (Phi-4-mini: 0.75); the rest passes through. */
  readonly partialRotary: number;
  /** Biases on q, k, v projections (GPT-2 and Qwen2: yes; Llama: `attention_bias`). */
  readonly qkvBias: boolean;
  /** Bias on the attention output projection (GPT-2: yes; Qwen2: no; Llama: `attention_bias`). */
  readonly oBias: boolean;
  /** Biases on the MLP projections (GPT-2: yes; Qwen2: no; Llama: `mlp_bias`). */
  readonly mlpBias: boolean;
  /** RMSNorm over each query and key head before RoPE (Qwen3, Gemma 3). */
  readonly qkNorm: boolean;
  /**
   * Norms on each sub-layer's output before its residual add, besides the pre-norms (Gemma 2/3:
   * post_attention_layernorm and post_feedforward_layernorm).
   */
  readonly sandwichNorms: boolean;
  /** Input embeddings are multiplied by this (Gemma: √d rounded to float32); 1 elsewhere. */
  readonly embedScale: number;
  /** Attention scores are q·k·queryScale (default 1/√headDim; Gemma: query_pre_attn_scalar^−½). */
  readonly queryScale: number;
  /** Attention scores soft-capped as c·tanh(s/c) before the mask (Gemma 2); absent = none. */
  readonly attnSoftcap?: number;
  /** Final logits soft-capped as c·tanh(z/c) (Gemma 2); absent = none. */
  readonly finalSoftcap?: number;
  /** Window of the sliding layers: a query sees the keys at most `slidingWindow − 1` positions back. */
  readonly slidingWindow?: number;
  /** Each layer's attention; absent: every layer `sliding` when `slidingWindow` is set, else `full`. */
  readonly layerTypes?: readonly LayerAttention[];
  /** Dropout while training (all 0: none). */
  readonly dropout: DropoutRates;
  /** LM head shares the token embedding matrix. */
  readonly tieEmbeddings: boolean;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  /** Every end-of-sequence id when the checkpoint lists several (Llama 3.1); `eosTokenId` is the first. */
  readonly eosTokenIds?: readonly number[];
  readonly padTokenId?: number;
}

/** The transformers `model_type`s Troupe reads and writes. */
export type HfModelType =
  | 'gpt2'
  | 'llama'
  | 'qwen2'
  | 'qwen3'
  | 'mistral'
  | 'gemma2'
  | 'gemma3_text'
  | 'phi3';

/** Fields every config has once validated; builders may leave them out for their defaults. */
type Defaulted =
  | 'normUnitOffset'
  | 'partialRotary'
  | 'qkNorm'
  | 'sandwichNorms'
  | 'embedScale'
  | 'queryScale'
  | 'dropout';

/** A config as written by hand: the switches with defaults may be left out. */
export type ModelConfigInput = Omit<ModelConfig, Defaulted> & Partial<Pick<ModelConfig, Defaulted>>;

export const NO_DROPOUT: DropoutRates = Object.freeze({ embedding: 0, attention: 0, residual: 0 });

type Overrides = Partial<ModelConfigInput> &
  Pick<ModelConfig, 'vocabSize' | 'hidden' | 'layers' | 'heads'>;

/** A GPT-2-family config (learned positions, LayerNorm, GELU-tanh, biases, tied embeddings). */
export function gpt2Config(o: Overrides): ModelConfig {
  return validateConfig({
    family: 'gpt2',
    kvHeads: o.heads,
    headDim: o.hidden / o.heads,
    intermediate: 4 * o.hidden,
    maxPositions: 1024,
    norm: 'layernorm',
    normEps: 1e-5,
    mlp: 'gelu',
    positions: 'learned',
    ropeTheta: 10000,
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tieEmbeddings: true,
    ...o,
  });
}

/** A Llama-family config (RoPE, RMSNorm, SwiGLU, no biases); Qwen2 is this with `qkvBias: true`. */
export function llamaConfig(o: Overrides & { intermediate: number }): ModelConfig {
  return validateConfig({
    family: 'llama',
    kvHeads: o.heads,
    headDim: o.hidden / o.heads,
    maxPositions: 2048,
    norm: 'rmsnorm',
    normEps: 1e-6,
    mlp: 'swiglu',
    positions: 'rope',
    ropeTheta: 10000,
    qkvBias: false,
    oBias: false,
    mlpBias: false,
    tieEmbeddings: false,
    ...o,
  });
}

function fail(field: string, message: string): never {
  throw new TroupeError('BAD_ARGUMENT', `Model config '${field}': ${message}`, {
    details: { field },
  });
}

const positiveInt = (c: ModelConfig, k: keyof ModelConfig) => {
  const v = c[k];
  if (!Number.isInteger(v) || (v as number) <= 0)
    fail(k, `must be a positive integer, got ${String(v)}`);
};

const positive = (field: string, v: number | undefined) => {
  if (v !== undefined && !(typeof v === 'number' && v > 0 && Number.isFinite(v)))
    fail(field, `must be a finite number > 0, got ${String(v)}`);
};

/** Each layer's attention kind (`layerTypes`, or every layer alike). */
export function layerAttention(c: ModelConfig, layer: number): LayerAttention {
  return c.layerTypes?.[layer] ?? (c.slidingWindow === undefined ? 'full' : 'sliding');
}

/** Width of the rotated part of each head (even; the whole head unless `partialRotary` < 1). */
export function rotaryDim(c: ModelConfig): number {
  return Math.trunc(c.headDim * c.partialRotary);
}

function checkRopeScaling(s: RopeScaling): void {
  const f = 'ropeScaling';
  const types = ['linear', 'dynamic', 'yarn', 'llama3'];
  if (!types.includes(s.type))
    fail(`${f}.type`, `must be one of ${types.join(', ')}, got '${String(s.type)}'`);
  if (!(s.factor > 0)) fail(`${f}.factor`, `must be > 0, got ${s.factor}`);
  if (s.type === 'llama3') {
    positive(`${f}.lowFreqFactor`, s.lowFreqFactor);
    positive(`${f}.highFreqFactor`, s.highFreqFactor);
    if (!(s.highFreqFactor > s.lowFreqFactor))
      fail(
        `${f}.highFreqFactor`,
        `must exceed lowFreqFactor (${s.lowFreqFactor}), got ${s.highFreqFactor}`,
      );
  }
  if (s.type === 'yarn' || s.type === 'llama3') {
    if (!Number.isInteger(s.originalMaxPositions) || s.originalMaxPositions <= 0)
      fail(
        `${f}.originalMaxPositions`,
        `must be a positive integer, got ${s.originalMaxPositions}`,
      );
  }
  if (s.type === 'yarn') {
    for (const k of ['attentionFactor', 'betaFast', 'betaSlow', 'mscale', 'mscaleAllDim'] as const)
      positive(`${f}.${k}`, s[k]);
  }
}

/** Fill the defaulted switches, check every field and cross-field rule; returns it frozen. */
export function validateConfig(input: ModelConfigInput): ModelConfig {
  const c: ModelConfig = {
    normUnitOffset: false,
    partialRotary: 1,
    qkNorm: false,
    sandwichNorms: false,
    embedScale: 1,
    queryScale: 1 / Math.sqrt(input.headDim),
    dropout: NO_DROPOUT,
    ...input,
  };
  for (const k of [
    'vocabSize',
    'hidden',
    'layers',
    'heads',
    'kvHeads',
    'headDim',
    'intermediate',
    'maxPositions',
  ] as const) {
    positiveInt(c, k);
  }
  if (!['gpt2', 'llama', 'phi3'].includes(c.family))
    fail('family', `must be 'gpt2', 'llama' or 'phi3', got '${c.family}'`);
  if (c.heads % c.kvHeads !== 0) {
    fail(
      'kvHeads',
      `${c.kvHeads} must divide heads (${c.heads}): each key/value head serves heads/kvHeads query heads`,
    );
  }
  if (!(c.partialRotary > 0 && c.partialRotary <= 1))
    fail('partialRotary', `must be in (0, 1], got ${c.partialRotary}`);
  if (c.positions === 'rope' && rotaryDim(c) % 2 !== 0)
    fail(
      c.partialRotary < 1 ? 'partialRotary' : 'headDim',
      `the rotated width must be even for rotary embeddings, got ${rotaryDim(c)} (headDim ${c.headDim} × partialRotary ${c.partialRotary})`,
    );
  if (!(c.normEps > 0)) fail('normEps', `must be > 0, got ${c.normEps}`);
  if (c.positions === 'rope' && !(c.ropeTheta > 0))
    fail('ropeTheta', `must be > 0, got ${c.ropeTheta}`);
  positive('ropeLocalTheta', c.ropeLocalTheta);
  if (c.ropeScaling !== undefined) checkRopeScaling(c.ropeScaling);
  if (!['layernorm', 'rmsnorm'].includes(c.norm))
    fail('norm', `must be 'layernorm' or 'rmsnorm', got '${c.norm}'`);
  if (c.normUnitOffset && c.norm !== 'rmsnorm')
    fail('normUnitOffset', 'applies to RMSNorm only (Gemma), not layernorm');
  if (!['gelu', 'swiglu', 'geglu'].includes(c.mlp))
    fail('mlp', `must be 'gelu', 'swiglu' or 'geglu', got '${c.mlp}'`);
  if (!['learned', 'rope'].includes(c.positions))
    fail('positions', `must be 'learned' or 'rope', got '${c.positions}'`);
  positive('embedScale', c.embedScale);
  positive('queryScale', c.queryScale);
  positive('attnSoftcap', c.attnSoftcap);
  positive('finalSoftcap', c.finalSoftcap);
  if (c.slidingWindow !== undefined && (!Number.isInteger(c.slidingWindow) || c.slidingWindow < 1))
    fail('slidingWindow', `must be a positive integer, got ${c.slidingWindow}`);
  if (c.layerTypes !== undefined) {
    if (c.layerTypes.length !== c.layers)
      fail('layerTypes', `must name one kind per layer (${c.layers}), got ${c.layerTypes.length}`);
    const bad = c.layerTypes.findIndex((t) => t !== 'full' && t !== 'sliding');
    if (bad >= 0)
      fail('layerTypes', `entry ${bad} must be 'full' or 'sliding', got '${c.layerTypes[bad]}'`);
    if (c.layerTypes.includes('sliding') && c.slidingWindow === undefined)
      fail('layerTypes', 'has sliding layers but slidingWindow is not set');
  }
  for (const k of ['embedding', 'attention', 'residual'] as const) {
    const p = c.dropout[k];
    if (!(typeof p === 'number' && p >= 0 && p < 1))
      fail(`dropout.${k}`, `must be in [0, 1), got ${p}`);
  }
  const ids: [string, number | undefined][] = [
    ['bosTokenId', c.bosTokenId],
    ['eosTokenId', c.eosTokenId],
    ['padTokenId', c.padTokenId],
    ...(c.eosTokenIds ?? []).map((v, i): [string, number] => [`eosTokenIds[${i}]`, v]),
  ];
  for (const [k, v] of ids) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v >= c.vocabSize)) {
      fail(k, `must be a token id in [0, ${c.vocabSize}), got ${v}`);
    }
  }
  if (c.eosTokenIds !== undefined && c.eosTokenIds[0] !== c.eosTokenId)
    fail('eosTokenIds', `must start with eosTokenId (${c.eosTokenId}), got [${c.eosTokenIds}]`);
  for (const k of Object.keys(c) as (keyof ModelConfig)[])
    if (c[k] === undefined) delete (c as Partial<Record<keyof ModelConfig, unknown>>)[k];
  return Object.freeze({
    ...c,
    dropout: Object.freeze({ ...c.dropout }),
    ...(c.layerTypes ? { layerTypes: Object.freeze([...c.layerTypes]) } : {}),
    ...(c.eosTokenIds ? { eosTokenIds: Object.freeze([...c.eosTokenIds]) } : {}),
  });
}
