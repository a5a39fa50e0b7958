/**
 * Troupe's tokenizers: Hugging Face tokenizer.json load/save for BPE (byte-level and
 * SentencePiece-style), WordPiece and Unigram models with their normalizers, pre-tokenizers,
 * post-processors and decoders; GPT-2's original files; training of byte-level BPE, WordPiece
 * and Unigram; and the pre-tokeniser patterns of GPT-2, Llama 3 and Qwen2.
 */
export type { AddedToken } from './added-tokens.js';
export { fromGpt2Files } from './gpt2.js';
export { loadTokenizer, resolveTokenizerFile, saveTokenizer, tokenizerFromJson } from './io.js';
export { MODELS } from './models/index.js';
export { compilePattern, PATTERNS, translatePattern } from './pattern.js';
export { DECODERS } from './pipeline/decoders.js';
export { NORMALIZERS } from './pipeline/normalizers.js';
export { POST_PROCESSORS } from './pipeline/post-processors.js';
export { PRE_TOKENIZERS } from './pipeline/pre-tokenizers.js';
export type {
  ModelData,
  SpecialTokensConfig,
  Template,
  TemplatePiece,
  TokenizerSpec,
} from './spec.js';
export {
  /** The name Troupe's tokenizer had when byte-level BPE was its only kind. */
  Tokenizer as BpeTokenizer,
  Tokenizer,
} from './tokenizer.js';
export { type TrainBpeOptions, trainBpe } from './train.js';
export { type TrainUnigramOptions, trainUnigram } from './train-unigram.js';
export { type TrainWordPieceOptions, trainWordPiece } from './train-wordpiece.js';
export type { TokenizerLike } from './types.js';
