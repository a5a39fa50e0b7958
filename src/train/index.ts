/**
 * What every trainer shares and no model code needs: the run directory (config, metrics, log,
 * checkpoints with latest/best pointers and retention, trainer state), the HTML report, and
 * progress as data. Rendering progress to a terminal is the CLI's (src/cli/progress-reporter.ts).
 */
export {
  type BestCheckpointRef,
  type CheckpointMetric,
  type CheckpointRef,
  Checkpoints,
  type CommitOptions,
  stepDirName,
} from './checkpoints.js';
export { formatCompact, formatDuration, formatValue } from './format.js';
export { type MetricRow, parseMetrics, type Split } from './metrics.js';
export {
  type FormatProgressOptions,
  formatProgress,
  type ProgressOptions,
  type ProgressState,
  ProgressTracker,
  type ProgressUpdate,
} from './progress.js';
export {
  type LiveOptions,
  REPORT_FILE,
  type ReportOptions,
  type RunInput,
  readRun,
  renderReport,
  renderRuns,
  writeReport,
} from './report.js';
export {
  type AppendMetricsOptions,
  type CreateRunDirOptions,
  RunDir,
  type RunDirOptions,
} from './run-dir.js';
export {
  type JsonValue,
  readTrainerState,
  TRAINER_STATE_FILE,
  type TrainerState,
  writeTrainerState,
} from './trainer-state.js';
