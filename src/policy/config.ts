import { TroupeError } from '../errors.js';

/**
 * One typed config for every decoder-only model Troupe runs: the GPT-2 family and the
 * Llama / Qwen2 family differ only in the switches below.
 */
export interface ModelConfig {
  /** Family, for naming on import/export: `gpt2` (Conv1D names) or `llama` (Llama/Qwen2 names). */
  readonly family: 'gpt2' | 'llama';
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
  /** `gelu` = GPT-2 MLP with GELU-tanh; `swiglu` = Llama MLP down(silu(gate(x)) ⊙ up(x)). */
  readonly mlp: 'gelu' | 'swiglu';
  /** `learned` absolute positions (GPT-2) or rotary embeddings (Llama, HF rotate-half layout). */
  readonly positions: 'learned' | 'rope';
  /** RoPE base θ. */
  readonly ropeTheta: number;
  /** Biases on q, k, v projections (GPT-2 and Qwen2: yes; Llama: `attention_bias`). */
  readonly qkvBias: boolean;
  /** Bias on the attention output projection (GPT-2: yes; Qwen2: no; Llama: `attention_bias`). */
  readonly oBias: boolean;
  /** Biases on the MLP projections (GPT-2: yes; Qwen2: no; Llama: `mlp_bias`). */
  readonly mlpBias: boolean;
  /** LM head shares the token embedding matrix. */
  readonly tieEmbeddings: boolean;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
}

type Overrides = Partial<ModelConfig> &
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

/** Check a config's fields and cross-field rules; returns it frozen. */
export function validateConfig(c: ModelConfig): ModelConfig {
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
  if (c.heads % c.kvHeads !== 0) {
    fail(
      'kvHeads',
      `${c.kvHeads} must divide heads (${c.heads}): each key/value head serves heads/kvHeads query heads`,
    );
  }
  if (c.positions === 'rope' && c.headDim % 2 !== 0)
    fail('headDim', `must be even for rotary embeddings, got ${c.headDim}`);
  if (!(c.normEps > 0)) fail('normEps', `must be > 0, got ${c.normEps}`);
  if (c.positions === 'rope' && !(c.ropeTheta > 0))
    fail('ropeTheta', `must be > 0, got ${c.ropeTheta}`);
  if (!['layernorm', 'rmsnorm'].includes(c.norm))
    fail('norm', `must be 'layernorm' or 'rmsnorm', got '${c.norm}'`);
  if (!['gelu', 'swiglu'].includes(c.mlp))
    fail('mlp', `must be 'gelu' or 'swiglu', got '${c.mlp}'`);
  if (!['learned', 'rope'].includes(c.positions))
    fail('positions', `must be 'learned' or 'rope', got '${c.positions}'`);
  for (const k of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) {
    const v = c[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v >= c.vocabSize)) {
      fail(k, `must be a token id in [0, ${c.vocabSize}), got ${v}`);
    }
  }
  return Object.freeze({ ...c });
}
