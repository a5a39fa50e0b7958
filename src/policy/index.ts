export * as checkpoint from './checkpoint/index.js';
export {
  type DropoutRates,
  gpt2Config,
  type LayerAttention,
  llamaConfig,
  type ModelConfig,
  NO_DROPOUT,
  type RopeScaling,
  validateConfig,
} from './config.js';
export { type GenerateOptions, type Generation, generate } from './generate.js';
export {
  type LoadModelOptions,
  loadHfModel,
  loadModel,
  loadOptimizer,
  readModelConfig,
  saveModel,
  saveOptimizer,
} from './io.js';
export { lmLoss } from './lm-loss.js';
export { Lora, type LoraConfig, type LoraSite, loraSites } from './lora.js';
export { type MergeOptions, type MergeResult, mergeToDirectory } from './merge.js';
export { CausalLM, type ForwardOptions, type Tensor32 } from './model/causal-lm.js';
export { KVCache } from './model/kv-cache.js';
export {
  AdamW,
  type AdamWOptions,
  clipGradNorm,
  GradAccumulator,
  makeSchedule,
  SCHEDULES,
  type Schedule,
} from './optim/index.js';
export { type HeadName, headSpecs, type ParamSpec, paramSpecs } from './params.js';
export { loadLoraAdapter, saveLoraAdapter } from './peft.js';
export { type SamplingOptions, sampleToken } from './sampling.js';
export { tokenLogprobs } from './score.js';
export {
  describeModelSource,
  type ModelSource,
  type ResolveOptions,
  type RunCheckpoint,
  resolveModelSource,
} from './source.js';
