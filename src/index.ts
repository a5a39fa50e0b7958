/**
 * Troupe's public library API. Short and explicit: everything a user imports is listed here.
 */

export { AllReduce, type AllReduceShared, createAllReduce } from './actors/allreduce.js';
export { deserializeError, type SerializedError, serializeError } from './actors/errors.js';
export { TaskPool, type TaskPoolOptions } from './actors/pool.js';
export type { LogLevel, LogRecord, MetricRecord } from './actors/protocol.js';
export { type ActorContext, type RoleFactory, type RoleRef, roleRef } from './actors/role.js';
export {
  type Actor,
  type ActorSpec,
  type ActorUsage,
  type RestartPolicy,
  Supervisor,
  type SupervisorOptions,
  type ThreadOptions,
} from './actors/supervisor.js';
export {
  parseTopology,
  planThreads,
  type Topology,
  type TopologyInput,
} from './actors/topology.js';
export { type Placement, type RoleTable, Troupe } from './actors/troupe.js';
export { packWeights, SharedWeights, unpackWeights } from './actors/weights.js';
export type { ActorRun } from './algorithms/common.js';
export {
  type AlgorithmTopology,
  type CastMember,
  describePlacement,
  launch,
  type PlacedActor,
  plays,
  type ResolvedPlacement,
  resolvePlacement,
} from './algorithms/launch.js';
export { type TrainEvents, type TrainOptions, type TrainResult, trainLm } from './algorithms/lm.js';
export * from './algorithms/losses/index.js';
export { type PreferenceConfig, trainPreference } from './algorithms/preference.js';
export {
  ALGORITHMS,
  type Algorithm,
  type AlgorithmName,
  algorithmEntry,
  CONFIG_SCHEMAS,
  defineAlgorithm,
  registerAlgorithm,
} from './algorithms/registry.js';
export { type RlTrainOptions, trainRl } from './algorithms/rl.js';
export { CRITIC, type CriticArgs, type CriticRole } from './algorithms/roles/critic.js';
export {
  GENERATOR,
  type GeneratedBatch,
  type GeneratorArgs,
  type GeneratorRole,
} from './algorithms/roles/generator.js';
export { actionLogProbs } from './algorithms/roles/logprobs.js';
export {
  POLICY,
  type PolicyArgs,
  type PolicyRole,
  type RlStepMetrics,
  type StepResult,
  type TrainBatch,
} from './algorithms/roles/policy.js';
export {
  type PairBatch,
  type PairLearnerRole,
  PREFERENCE_LEARNER,
  type PreferenceArgs,
  type RefLogps,
} from './algorithms/roles/preference-learner.js';
export { REFERENCE, type ReferenceArgs, type ReferenceRole } from './algorithms/roles/reference.js';
export { createReward, REWARD, type RewardRole } from './algorithms/roles/reward.js';
export {
  REWARD_MODEL,
  type RewardModelArgs,
  type RewardModelRole,
} from './algorithms/roles/reward-model.js';
export { placementOf, TOPOLOGIES } from './algorithms/topologies.js';
export * from './cai/index.js';
export { actorsSchema } from './config/actors.js';
export { configToYaml, loadConfig } from './config/load.js';
export {
  type DpoConfig,
  dpoConfigSchema,
  grpoConfigSchema,
  type LmConfig,
  type PretrainConfig,
  ppoConfigSchema,
  pretrainConfigSchema,
  RL_ALGORITHMS,
  type RlAlgorithm,
  type RlConfig,
  type RmConfig,
  registryName,
  reinforceConfigSchema,
  rlooConfigSchema,
  rmConfigSchema,
  type SftConfig,
  sftConfigSchema,
} from './config/schema.js';
export * from './data/index.js';
export {
  BpeTokenizer,
  fromGpt2Files,
  loadTokenizer,
  PATTERNS,
  saveTokenizer,
  Tokenizer,
  type TokenizerSpec,
  type TrainUnigramOptions,
  type TrainWordPieceOptions,
  tokenizerFromJson,
  trainBpe,
  trainUnigram,
  trainWordPiece,
} from './data/tokenizer/index.js';
export type { TokenizerLike } from './data/tokenizer/types.js';
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
  describeModelSource,
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
  llamaConfig,
  lmLoss,
  loadHfModel,
  loadLoraAdapter,
  loadModel,
  loadOptimizer,
  type MergeResult,
  type ModelConfig,
  type ModelSource,
  makeSchedule,
  mergeToDirectory,
  paramSpecs,
  readModelConfig,
  resolveModelSource,
  type SamplingOptions,
  SCHEDULES,
  type Schedule,
  saveLoraAdapter,
  saveModel,
  saveOptimizer,
  type Tensor32,
  tokenLogprobs,
  validateConfig,
} from './policy/index.js';
export * from './reward/index.js';
export * from './rollout/index.js';
export * from './scaling/index.js';
export * from './train/index.js';
