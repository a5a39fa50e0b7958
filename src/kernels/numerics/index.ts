export { entropyFromLogits } from './entropy.js';
export {
  KL_ESTIMATORS,
  type KlEstimator,
  type KlEstimatorName,
  type KlOptions,
  klEstimate,
} from './kl.js';
export { logSoftmax } from './log-softmax.js';
export { logProbsFromLogits } from './logprobs.js';
export { maskedMean, maskedSum, maskedVar, maskedWhiten } from './masked.js';
export * as reference from './reference.js';
