import { TroupeError } from '../../errors.js';
import type { HfModelType, ModelConfig } from '../config.js';
import { HF_FAMILY } from './hf-tables.js';

/*
 * Which transformers model type a ModelConfig exports as (hf-export.ts), and the refusal of a
 * config whose switches that type's class cannot express.
 */

export function cannot(c: ModelConfig, what: string): TroupeError {
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

export function inferType(c: ModelConfig): HfModelType {
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
