/** Rollouts: the Experience batch type and the frames it (and any payload) crosses threads in. */

export {
  ADVANTAGE_ESTIMATORS,
  type AdvantageEstimator,
  type AdvantageEstimatorName,
  type AdvantageInputs,
  type AdvantageOutput,
  type AdvantageParams,
  computeAdvantages,
} from './advantages.js';
export {
  type AssembleInputs,
  type AssembleParams,
  assembleExperience,
  experienceMetrics,
  type GeneratedRows,
  layoutOf,
  minibatchRows,
  type RolloutLayout,
} from './assemble.js';
export {
  decodeExperience,
  decodeFrame,
  decodeRollout,
  EXPERIENCE_FRAME,
  encodeExperience,
  encodeFrame,
  encodeRollout,
  FRAME_VERSION,
  type Frame,
  type FrameEnvelope,
  type FrameKind,
  ROLLOUT_FRAME,
  readFrame,
  SUPPORTED_FRAME_VERSIONS,
} from './codec.js';
export {
  checkExperience,
  checkExperienceLayout,
  EXPERIENCE_ARRAY_FIELDS,
  type Experience,
  type ExperienceShape,
  experienceBytes,
  sliceExperience,
} from './experience.js';
export {
  AdaptiveKLController,
  FixedKLController,
  type KlController,
  type ShapedRewards,
  type ShapeRewardsInputs,
  type ShapeRewardsParams,
  shapeRewards,
  tokenKl,
} from './kl.js';
export {
  type Generated,
  type MadeExperience,
  type MakerOptions,
  makeExperience,
  type PromptRow,
  rewardBatchOf,
  type ScorePhase,
  type Scorers,
} from './maker.js';
export { clipRewards, normalizeRewards, whiten } from './normalize.js';
export type { DetailedReward, RewardBatch } from './reward-batch.js';
export { checkWireTensor, WIRE_ARRAYS, type WireDtype, type WireTensor } from './wire-tensor.js';
