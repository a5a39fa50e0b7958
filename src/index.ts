/**
 * Troupe's public library API. Short and explicit: everything a user imports is listed here.
 */
export { type ErrorCode, hasCode, TroupeError } from './errors.js';
export type { BackendName } from './kernels/backends/index.js';
export { type Device, formatDevice, parseDevice } from './kernels/device.js';
export { type MatMulShape, type MatMulTiming, matMulFlops, timeMatMul } from './kernels/measure.js';
export {
  entropyFromLogits,
  KL_ESTIMATORS,
  type KlEstimator,
  type KlEstimatorName,
  type KlOptions,
  klEstimate,
  logProbsFromLogits,
  logSoftmax,
  maskedMean,
  maskedSum,
  maskedVar,
  maskedWhiten,
} from './kernels/numerics/index.js';
export { philox4x32, RandomStream, type StreamKey } from './kernels/random.js';
export {
  type BackendAttempt,
  currentRuntime,
  probeBackends,
  type RuntimeInfo,
  type RuntimeSpec,
  startRuntime,
} from './kernels/runtime.js';
/** The TensorFlow.js namespace Troupe runs on (one copy per thread, shared with Troupe). */
export * as tf from './kernels/tf.js';
export {
  AdamW,
  type AdamWOptions,
  CausalLM,
  checkpoint,
  clipGradNorm,
  type ForwardOptions,
  type GenerateOptions,
  type Generation,
  GradAccumulator,
  generate,
  gpt2Config,
  type HeadName,
  KVCache,
  Lora,
  type LoraConfig,
  leftPad,
  llamaConfig,
  lmLoss,
  loadLoraAdapter,
  loadModel,
  loadOptimizer,
  type ModelConfig,
  makeSchedule,
  paramSpecs,
  rightPad,
  type SamplingOptions,
  SCHEDULES,
  type Schedule,
  saveLoraAdapter,
  saveModel,
  saveOptimizer,
  type Tensor32,
  type TokenBatch,
  tokenLogprobs,
  validateConfig,
} from './policy/index.js';
