import type { AddedToken } from './added-tokens.js';

/** One item of a post-processor template: a special token's ids, or the sequence A or B. */
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
 * A tokenizer model's data: the large tables as typed values, and `options`, the rest of
 * tokenizer.json's `model` section (unk_token, byte_fallback, …) as read, which the model's
 * builder validates and which saving writes back.
 */
export type ModelData =
  | {
      readonly type: 'BPE';
      /** Token string → id. */
      readonly vocab: ReadonlyMap<string, number>;
      /** Merge rules, highest priority first. */
      readonly merges: readonly (readonly [string, string])[];
      /** How the file wrote merges: "a b" strings or ["a", "b"] pairs. */
      readonly mergesForm: 'string' | 'pair';
      readonly options: Readonly<Record<string, unknown>>;
    }
  | {
      readonly type: 'WordPiece';
      readonly vocab: ReadonlyMap<string, number>;
      readonly options: Readonly<Record<string, unknown>>;
    }
  | {
      readonly type: 'Unigram';
      /** (piece, log-probability score); a piece's id is its index. */
      readonly pieces: readonly (readonly [string, number])[];
      readonly options: Readonly<Record<string, unknown>>;
    };

/**
 * Everything a tokenizer is, as plain data: what `Tokenizer` runs and what `saveTokenizer`
 * writes. The pipeline sections are tokenizer.json's own JSON (as read, or as a trainer wrote
 * them); `Tokenizer` builds each into its piece through the section's registry, so what is saved
 * is exactly what ran.
 */
export interface TokenizerSpec {
  readonly model: ModelData;
  readonly addedTokens: readonly AddedToken[];
  readonly normalizer: unknown;
  readonly preTokenizer: unknown;
  readonly postProcessor: unknown;
  readonly decoder: unknown;
  readonly special: SpecialTokensConfig;
  /** Other top-level tokenizer.json fields (version, truncation, padding), written back unchanged. */
  readonly extra: Readonly<Record<string, unknown>>;
  /** tokenizer_config.json as read; `{}` when there was none. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The file it was read from, for error messages. */
  readonly source?: string;
}

/** The HF sections of a plain byte-level tokenizer: GPT-2's, or a trained one's. */
export function byteLevelJson(
  pattern: string | undefined,
): Pick<TokenizerSpec, 'normalizer' | 'preTokenizer' | 'postProcessor' | 'decoder'> {
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
