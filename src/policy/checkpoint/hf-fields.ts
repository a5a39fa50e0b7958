import { TroupeError } from '../../errors.js';
import type { HfModelType, ModelConfig } from '../config.js';
import type { Raw } from './hf-tables.js';
import { badCheckpoint } from './tensor32.js';

/*
 * Reading config.json (hf-config.ts): typed, recorded reads of its fields, and the fields known
 * not to change the model, so that any other field left unread is refused by name.
 */

/**
 * Fields of any config.json that do not change the model's function: bookkeeping, output
 * switches, the generation defaults transformers 4 kept in config.json, initialisation, the
 * storage dtype (Troupe computes in float32), attention kernels, labels of a classifier head.
 */
export const INERT_COMMON = new Set([
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
export const INERT_BY_TYPE: Readonly<Partial<Record<HfModelType, readonly string[]>>> = {
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

export function unsupported(source: string, field: string, what: string): TroupeError {
  return new TroupeError('UNSUPPORTED', `${source}: '${field}' ${what}`, {
    details: { file: source, field },
  });
}

/** Typed reads of config.json fields; errors name the file and the field; reads are recorded. */
export class Fields {
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
