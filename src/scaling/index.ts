/** Scaling laws: sweeps of pretraining jobs and the Chinchilla / Kaplan fits (docs/scaling.md). */
export { type AnalysisOptions, analyzeSweep, type ScalingAnalysis } from './analyze.js';
export { type BootstrapResult, bootstrap, quantile } from './bootstrap.js';
export {
  type ChinchillaFit,
  type ChinchillaLaw,
  chinchillaObjective,
  computeOptimal,
  fitChinchilla,
  HOFFMANN_GRID,
  huber,
  type LossPoint,
  predictLoss,
} from './chinchilla.js';
export { loadSweepConfig, parseSweepConfig, type SweepConfig } from './config.js';
export { type Approach2, approach2, type IsoPoint } from './isoflop.js';
export { countParams, type PlannedJob, planJobs } from './jobs.js';
export { frontier, type KaplanLaw, kaplanLaw } from './kaplan.js';
export { type LbfgsOptions, type LbfgsResult, lbfgs, type Objective } from './lbfgs.js';
export { fitParabola, fitPowerLaw } from './regression.js';
export { renderScalingReport, writeScalingReport } from './report.js';
export { planSweep, runSweep, type SweepEvents, type SweepOutcome } from './sweep.js';
export { readTable, type SweepRow } from './table.js';
