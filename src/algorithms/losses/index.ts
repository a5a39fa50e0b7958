export { type LossOutput, stopGradient } from './common.js';
export { dpoSigmoidLoss, ipoLoss } from './dpo.js';
export type {
  PairedInputs,
  PreferenceInputs,
  PreferenceLossSpec,
  PreferenceParamName,
  PreferenceParams,
  UnpairedInputs,
} from './inputs.js';
export { ktoLoss } from './kto.js';
export {
  type PairObjectiveInputs,
  type PolicyLossConfig,
  type PolicyObjectiveInputs,
  policyObjective,
  preferenceObjective,
  rewardModelObjective,
} from './objectives.js';
export { log1mexp, ORPO_MAX_MEAN_LOGP, orpoLoss } from './orpo.js';
export {
  AGG_MODES,
  type AggMode,
  type AggParams,
  aggLoss,
  type EntropyInputs,
  type EntropyParams,
  entropyBonus,
  POLICY_LOSSES,
  type PolicyLoss,
  type PolicyLossInputs,
  type PolicyLossName,
  type PolicyLossParams,
  policyLoss,
  ppoPolicyLoss,
  type ValueLossInputs,
  type ValueLossParams,
  valueLoss,
} from './ppo.js';
export {
  needsReference,
  PREFERENCE_LOSSES,
  type PreferenceLoss,
  type PreferenceLossName,
  pairedLoss,
  preferenceLoss,
  preferenceLossEntry,
  registerPreferenceLoss,
  unpairedLoss,
} from './preference.js';
export {
  bradleyTerryLoss,
  REWARD_MODEL_LOSSES,
  type RewardModelInputs,
  type RewardModelLoss,
  type RewardModelLossInputs,
  type RewardModelParams,
} from './reward-model.js';
export { type SequenceLogps, sequenceLogps, splitChosenRejected } from './sequence.js';
export { simpoLoss } from './simpo.js';
export { type SoftRewardModelInputs, softBradleyTerryLoss } from './soft-reward-model.js';
