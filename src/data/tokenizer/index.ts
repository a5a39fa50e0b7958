/**
 * Troupe's byte-level BPE tokenizer: Hugging Face tokenizer.json load/save, GPT-2's original
 * files, training, and the pre-tokeniser patterns of GPT-2, Llama 3 and Qwen2.
 */
export type { AddedToken } from './added-tokens.js';
export { fromGpt2Files } from './gpt2.js';
export { loadTokenizer, resolveTokenizerFile, saveTokenizer, tokenizerFromJson } from './io.js';
export { compilePattern, PATTERNS, translatePattern } from './pattern.js';
export type { BpeSpec, SpecialTokensConfig, Template, TemplatePiece } from './spec.js';
export { BpeTokenizer } from './tokenizer.js';
export { type TrainBpeOptions, trainBpe } from './train.js';
export type { TokenizerLike } from './types.js';
