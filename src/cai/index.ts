/** Constitutional AI (Bai et al. 2022): the public names of src/cai. */
export { type CaiConfig, caiConfigSchema, loadCaiConfig, type ModelRef } from './config.js';
export {
  type Constitution,
  type CritiquePair,
  constitutionSchema,
  loadConstitution,
  parseConstitution,
} from './constitution.js';
export { type EndpointConfig, EndpointModel, endpointSchema, optionMass } from './endpoint.js';
export { type FeedbackOptions, type Judgement, type Label, Labeller } from './feedback.js';
export { LocalModel, type LocalModelOptions } from './local-model.js';
export type { CaiModel, ModelPrompt, OptionScores, Sampling } from './model.js';
export { type CaiResult, type CaiRunOptions, type CaiStage, runCai } from './pipeline.js';
export { type RlRecord, rlStage, rmRows } from './rl.js';
export { type SlOptions, type SlRecord, slOutputs, slStage } from './sl.js';
export { type DataStage, runDataStage, type StageResult } from './stage.js';
