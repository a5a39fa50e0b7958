/**
 * What the rest of Troupe needs from a tokenizer. Troupe's `Tokenizer` implements it; so can
 * an adapter over another library.
 */
export interface TokenizerLike {
  /** Number of ids (base vocabulary plus added tokens). */
  readonly vocabSize: number;
  /**
   * Text → ids. Special and added tokens in the text are split out first; `addSpecialTokens`
   * applies the post-processor template (e.g. a BOS token), default true.
   */
  encode(text: string, opts?: { readonly addSpecialTokens?: boolean }): number[];
  /** Ids → text; `skipSpecialTokens` drops special tokens, default false. */
  decode(ids: readonly number[], opts?: { readonly skipSpecialTokens?: boolean }): string;
  /** The id of a token string (an added/special token or a vocabulary entry), if any. */
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Special token ids, where the tokenizer defines them. */
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  /** Jinja chat template from tokenizer_config.json, when there is one. */
  readonly chatTemplate?: string;
}
