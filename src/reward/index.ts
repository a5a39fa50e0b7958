export type {
  ExactMatchOptions,
  LengthPenaltyOptions,
  LexiconSentimentOptions,
  RegexRewardOptions,
} from './builtins.js';
export { exactMatch, lengthPenalty, lexiconSentiment, regexReward } from './builtins.js';
export { checkRewards, defineSource } from './check.js';
export { type DetailedRewardSource, type WeightedPart, weightedSum } from './combine.js';
export {
  functionSource,
  type ModuleSourceOptions,
  moduleSource,
  type UserRewardFn,
  type UserRewardInput,
} from './function-source.js';
export { type HttpSourceOptions, httpSource } from './http-source.js';
export {
  type RewardModelSource,
  type RewardModelSourceOptions,
  rewardModelIds,
  rewardModelSource,
} from './model-source.js';
export { type PlannedSource, planRewardSources, type RewardArgs } from './plan.js';
export {
  REWARD_BUILTINS,
  type RewardContext,
  type RewardSpec,
  rewardFromSpec,
} from './registry.js';
export type { DetailedReward, RewardBatch, RewardSource, ScoreOptions } from './types.js';
