/** Rollouts: the Experience batch type and the frames it (and any payload) crosses threads in. */

export {
  ADVANTAGE_ESTIMATORS,
  type AdvantageEstimator,
  type AdvantageEstimatorName,
  type AdvantageInputs,
  type AdvantageOutput,
  type AdvantageParams,
  clipRewards,
  computeAdvantages,
  normalizeRewards,
  whiten,
} from './advantages.js';
export {
  decodeExperience,
  decodeFrame,
  EXPERIENCE_FRAME,
  encodeExperience,
  encodeFrame,
  FRAME_VERSION,
  type Frame,
  SUPPORTED_FRAME_VERSIONS,
} from './codec.js';
export {
  checkExperience,
  checkExperienceLayout,
  EXPERIENCE_ARRAY_FIELDS,
  type Experience,
  type ExperienceShape,
  experienceBytes,
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
export { checkWireTensor, WIRE_ARRAYS, type WireDtype, type WireTensor } from './wire-tensor.js';
