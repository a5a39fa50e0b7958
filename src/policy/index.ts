export { gpt2Config, llamaConfig, type ModelConfig, validateConfig } from './config.js';
export { leftPad, rightPad, type TokenBatch } from './model/batch.js';
export { CausalLM, type ForwardOptions, type Tensor32 } from './model/causal-lm.js';
export { KVCache } from './model/kv-cache.js';
export { type HeadName, headSpecs, type ParamSpec, paramSpecs } from './params.js';
