export { GradAccumulator } from './accumulate.js';
export {
  AdamW,
  type AdamWOptions,
  adamwOptionsSchema,
  type KindSource,
  type ParamKind,
  type ResolvedAdamWOptions,
} from './adamw.js';
export { type ClippedGrads, clipGradNorm } from './clip.js';
export * as reference from './reference.js';
export {
  type ConstantScheduleOptions,
  type DecayScheduleOptions,
  makeSchedule,
  SCHEDULES,
  type Schedule,
  type ScheduleName,
  type ScheduleOptions,
} from './schedule.js';
export {
  type AdamWStateDict,
  type AdamWStateMeta,
  type StateTensor,
  stateTensorName,
} from './state.js';
