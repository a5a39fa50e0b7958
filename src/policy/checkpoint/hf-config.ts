import { TroupeError } from '../../errors.js';
import {
  type DropoutRates,
  type HfModelType,
  type ModelConfig,
  validateConfig,
} from '../config.js';
import { importGemma, importGpt2, importLlamaLike, importPhi3 } from './hf-families.js';
import { Fields, INERT_BY_TYPE, INERT_COMMON, unsupported } from './hf-fields.js';
import type { Raw } from './hf-tables.js';
import { inferType } from './hf-type.js';
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
 *
 * The pieces: hf-tables.ts (model types, class names), hf-fields.ts (typed reads, inert fields),
 * hf-rope.ts (RoPE both ways), hf-families.ts (one importer per type), hf-type.ts (the type a
 * config exports as, and what it cannot express), hf-export.ts (config.json and
 * generation_config.json out). This file reads a config.json and makes fresh ones; the public
 * names of all of them are exported from here.
 */

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

export {
  type HfConfigOptions,
  hfConfigJson,
  toHfConfig,
  toHfGenerationConfig,
} from './hf-export.js';
export { HF_FAMILY, HF_MODEL_TYPES, SEQUENCE_CLASSIFIER } from './hf-tables.js';
export { hfModelType } from './hf-type.js';
export type { DropoutRates, HfModelType };
