/**
 * The names of a run directory's files (see ./run-dir.ts for what each holds), in one module
 * that both the run directory and the report read.
 */
export const CONFIG_YAML = 'config.yaml';
export const CONFIG_JSON = 'config.json';
export const METRICS_FILE = 'metrics.jsonl';
export const LOG_FILE = 'log.txt';
export const CHECKPOINTS_DIR = 'checkpoints';
export const REPORT_FILE = 'report.html';
