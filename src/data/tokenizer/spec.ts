import type { AddedToken } from './added-tokens.js';

/** One item of a TemplateProcessing template: a special token's ids, or the sequence A or B. */
export type TemplatePiece =
  | { readonly kind: 'special'; readonly token: string; readonly ids: readonly number[] }
  | { readonly kind: 'sequence'; readonly which: 'A' | 'B' };

export interface Template {
  readonly single: readonly TemplatePiece[];
  readonly pair: readonly TemplatePiece[];
}

/** What tokenizer_config.json contributes. Token fields are token strings. */
export interface SpecialTokensConfig {
  readonly bosToken?: string;
  readonly eosToken?: string;
  readonly padToken?: string;
  /** Prepend BOS / append EOS on `encode`; used only when tokenizer.json has no template. */
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly chatTemplate?: string;
}

/**
 * Everything a byte-level BPE tokenizer is, as plain data: what `BpeTokenizer` runs and what
 * `saveTokenizer` writes. `json` keeps the tokenizer.json sections as read (or as generated for
 * GPT-2 files and trained tokenizers) so that saving writes back what was loaded.
 */
export interface BpeSpec {
  /** Byte-level token string → id. */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merge rules, highest priority first, as pairs of byte-level token strings. */
  readonly merges: readonly (readonly [string, string])[];
  /** A pre-token that is itself a vocab entry maps straight to its id (Llama 3). */
  readonly ignoreMerges: boolean;
  readonly addedTokens: readonly AddedToken[];
  readonly normalizer: 'NFC' | null;
  /** Pre-tokeniser regexes (tokenizer.json syntax), applied in turn; matches and gaps are kept. */
  readonly patterns: readonly string[];
  /** ByteLevel `add_prefix_space`: prepend ' ' to text that does not start with one. */
  readonly addPrefixSpace: boolean;
  readonly template: Template | null;
  readonly special: SpecialTokensConfig;
  readonly json: {
    readonly normalizer: unknown;
    readonly preTokenizer: unknown;
    readonly postProcessor: unknown;
    readonly decoder: unknown;
    /** The model section minus vocab and merges (dropout, unk_token, …). */
    readonly model: Readonly<Record<string, unknown>>;
    readonly mergesForm: 'string' | 'pair';
    /** Other top-level fields (version, truncation, padding), written back unchanged. */
    readonly extra: Readonly<Record<string, unknown>>;
    /** tokenizer_config.json as read; `{}` when there was none. */
    readonly config: Readonly<Record<string, unknown>>;
  };
}

/** The HF sections of a plain byte-level tokenizer: GPT-2's, or a trained one's. */
export function byteLevelJson(
  pattern: string | undefined,
): Pick<BpeSpec['json'], 'normalizer' | 'preTokenizer' | 'postProcessor' | 'decoder'> {
  const byteLevel = (useRegex: boolean) => ({
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  });
  return {
    normalizer: null,
    preTokenizer:
      pattern === undefined
        ? byteLevel(true)
        : {
            type: 'Sequence',
            pretokenizers: [
              { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
              byteLevel(false),
            ],
          },
    postProcessor: byteLevel(true),
    decoder: byteLevel(true),
  };
}
