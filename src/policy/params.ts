import type { ModelConfig } from './config.js';

/**
 * Troupe's own parameter names and shapes. One layout for both families; every weight matrix is
 * stored [in, out] so a projection is x·W with no transpose (the fast matmul form on every
 * backend). Checkpoint import/export maps these to Hugging Face names and layouts.
 *
 *   embed.weight                    [V, d]
 *   pos_embed.weight                [P, d]          positions: learned
 *   layers.{i}.attn_norm.weight     [d]             (+ .bias for layernorm)
 *   layers.{i}.attn.q.weight        [d, H·hd]       (+ .bias when qkvBias)
 *   layers.{i}.attn.k.weight        [d, KV·hd]      (+ .bias when qkvBias)
 *   layers.{i}.attn.v.weight        [d, KV·hd]      (+ .bias when qkvBias)
 *   layers.{i}.attn.q_norm.weight   [hd]            qkNorm (Qwen3, Gemma 3)
 *   layers.{i}.attn.k_norm.weight   [hd]            qkNorm
 *   layers.{i}.attn.o.weight        [H·hd, d]       (+ .bias when oBias)
 *   layers.{i}.attn_out_norm.weight [d]             sandwichNorms (Gemma)
 *   layers.{i}.mlp_norm.weight      [d]             (+ .bias for layernorm)
 *   layers.{i}.mlp.gate.weight      [d, I]          mlp: swiglu, geglu
 *   layers.{i}.mlp.up.weight        [d, I]          (+ .bias when mlpBias)
 *   layers.{i}.mlp.down.weight      [I, d]          (+ .bias when mlpBias)
 *   layers.{i}.mlp_out_norm.weight  [d]             sandwichNorms
 *   final_norm.weight               [d]             (+ .bias for layernorm)
 *   lm_head.weight                  [d, V]          absent when tieEmbeddings
 *
 * Heads added by actors that need them (not in the LM checkpoint):
 *   value_head.weight               [d, 1]          critic: a value per token
 *   score.weight                    [d, 1]          reward model: a score per sequence
 */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** What it is, for the weight-decay rule and initialisation. */
  readonly kind: 'embedding' | 'matrix' | 'bias' | 'norm';
}

export type HeadName = 'value_head' | 'score';

/** Every parameter of the language model, in a fixed order. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const d = c.hidden;
  const qDim = c.heads * c.headDim;
  const kvDim = c.kvHeads * c.headDim;
  const specs: ParamSpec[] = [{ name: 'embed.weight', shape: [c.vocabSize, d], kind: 'embedding' }];
  if (c.positions === 'learned') {
    specs.push({ name: 'pos_embed.weight', shape: [c.maxPositions, d], kind: 'embedding' });
  }
  const norm = (prefix: string, width = d) => {
    specs.push({ name: `${prefix}.weight`, shape: [width], kind: 'norm' });
    if (c.norm === 'layernorm')
      specs.push({ name: `${prefix}.bias`, shape: [width], kind: 'norm' });
  };
  const linear = (prefix: string, inDim: number, outDim: number, bias: boolean) => {
    specs.push({ name: `${prefix}.weight`, shape: [inDim, outDim], kind: 'matrix' });
    if (bias) specs.push({ name: `${prefix}.bias`, shape: [outDim], kind: 'bias' });
  };
  for (let i = 0; i < c.layers; i++) {
    const p = `layers.${i}`;
    norm(`${p}.attn_norm`);
    linear(`${p}.attn.q`, d, qDim, c.qkvBias);
    linear(`${p}.attn.k`, d, kvDim, c.qkvBias);
    linear(`${p}.attn.v`, d, kvDim, c.qkvBias);
    if (c.qkNorm) {
      norm(`${p}.attn.q_norm`, c.headDim);
      norm(`${p}.attn.k_norm`, c.headDim);
    }
    linear(`${p}.attn.o`, qDim, d, c.oBias);
    if (c.sandwichNorms) norm(`${p}.attn_out_norm`);
    norm(`${p}.mlp_norm`);
    if (c.mlp !== 'gelu') linear(`${p}.mlp.gate`, d, c.intermediate, c.mlpBias);
    linear(`${p}.mlp.up`, d, c.intermediate, c.mlpBias);
    linear(`${p}.mlp.down`, c.intermediate, d, c.mlpBias);
    if (c.sandwichNorms) norm(`${p}.mlp_out_norm`);
  }
  norm('final_norm');
  if (!c.tieEmbeddings)
    specs.push({ name: 'lm_head.weight', shape: [d, c.vocabSize], kind: 'matrix' });
  return specs;
}

/** The parameters of an optional head. */
export function headSpecs(c: ModelConfig, head: HeadName): ParamSpec[] {
  return [{ name: `${head}.weight`, shape: [c.hidden, 1], kind: 'matrix' }];
}
