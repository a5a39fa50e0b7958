import { appendFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from '../policy/checkpoint/atomic.js';
import {
  type BestCheckpointRef,
  type CheckpointRef,
  Checkpoints,
  type CommitOptions,
} from './checkpoints.js';
import { formatMetricLine, metricsUpTo, type Split } from './metrics.js';

/**
 * A training run's directory:
 *
 *   config.yaml, config.json     the resolved config (YAML to read, JSON to load)
 *   metrics.jsonl                one line per logged step and split (see ./metrics.ts)
 *   log.txt                      timestamped log lines
 *   checkpoints/                 step-N directories and the latest/best pointers (see ./checkpoints.ts)
 *   report.html                  written by `writeReport`
 *
 * Appends to metrics.jsonl and log.txt are synchronous, one write per line: they stay in order,
 * cannot be left un-awaited, and a crash cuts at most the last line (which readers drop). Every
 * other file is written to a temporary file and renamed over its name.
 */
export const CONFIG_YAML = 'config.yaml';
export const CONFIG_JSON = 'config.json';
export const METRICS_FILE = 'metrics.jsonl';
export const LOG_FILE = 'log.txt';
export const CHECKPOINTS_DIR = 'checkpoints';

export interface RunDirOptions {
  /** Keep this many most recent checkpoints, plus the best; default all. */
  readonly keepLast?: number;
  /** Clock in milliseconds since the epoch (tests inject one); default `Date.now`. */
  readonly now?: () => number;
}

export interface CreateRunDirOptions extends RunDirOptions {
  /** The resolved config, written as config.yaml and config.json. */
  readonly config: unknown;
  /**
   * Continue the run already in `dir` (its config files are replaced by `config`; see
   * `RunDir.resume`). An empty or missing `dir` starts a new run either way.
   */
  readonly resume?: boolean;
}

export interface AppendMetricsOptions {
  readonly split: Split;
}

async function entriesOf(dir: string): Promise<string[] | undefined> {
  const st = await stat(dir).catch(() => undefined);
  if (st === undefined) return undefined;
  if (!st.isDirectory()) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${dir} is a file, not a run directory; choose another --output.`,
      {
        details: { dir },
      },
    );
  }
  return readdir(dir);
}

/** The config as config.json and config.yaml texts; refused when JSON cannot hold it. */
function configFiles(config: unknown): { json: string; yaml: string } {
  let json: string | undefined;
  try {
    json = JSON.stringify(config, null, 2);
  } catch (e) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `RunDir.create: the config cannot be written as JSON: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (json === undefined) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'RunDir.create: config must be a JSON value, got undefined.',
    );
  }
  return { json: `${json}\n`, yaml: toYaml(JSON.parse(json)) };
}

export class RunDir {
  readonly dir: string;
  readonly checkpoints: Checkpoints;
  /** Set by `create({ resume: true })` and `resume()`: the checkpoint the run continues from. */
  resumedFrom: CheckpointRef | undefined;
  private readonly now: () => number;

  private constructor(dir: string, options: RunDirOptions) {
    this.dir = dir;
    this.now = options.now ?? Date.now;
    this.checkpoints = new Checkpoints(join(dir, CHECKPOINTS_DIR), options.keepLast);
  }

  /**
   * Start a run in `dir`, writing its config. A non-empty `dir` is refused unless `resume`, and
   * then it must hold a run: it is opened, its config replaced, and `resume()` applied.
   */
  static async create(dir: string, options: CreateRunDirOptions): Promise<RunDir> {
    const abs = resolve(dir);
    const entries = await entriesOf(abs);
    const existing = entries !== undefined && entries.length > 0;
    if (existing && !options.resume) {
      const shown = entries.slice(0, 5).join(', ') + (entries.length > 5 ? ', …' : '');
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Run directory ${abs} is not empty (${shown}). Pass --resume to continue the run in it, or choose another --output.`,
        { details: { dir: abs, entries: entries.slice(0, 20) } },
      );
    }
    if (existing && !entries.includes(CONFIG_JSON)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Cannot resume in ${abs}: it is not empty and holds no ${CONFIG_JSON}, so it is not a Troupe run directory. Choose another --output.`,
        { details: { dir: abs } },
      );
    }
    // Serialised before anything is created: a bad config leaves no half-made run behind.
    const config = configFiles(options.config);
    await mkdir(join(abs, CHECKPOINTS_DIR), { recursive: true });
    const run = new RunDir(abs, options);
    await writeFileAtomic(join(abs, CONFIG_JSON), config.json);
    await writeFileAtomic(join(abs, CONFIG_YAML), config.yaml);
    if (existing) {
      await run.resume();
    } else {
      run.log('run started');
    }
    return run;
  }

  /** Open the run in `dir` as it is (nothing is changed; call `resume()` to continue it). */
  static async open(dir: string, options: RunDirOptions = {}): Promise<RunDir> {
    const abs = resolve(dir);
    const entries = await entriesOf(abs);
    if (entries === undefined || !entries.includes(CONFIG_JSON)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${abs} is not a Troupe run directory (${entries === undefined ? 'it does not exist' : `no ${CONFIG_JSON}`}).`,
        { details: { dir: abs } },
      );
    }
    return new RunDir(abs, options);
  }

  get metricsPath(): string {
    return join(this.dir, METRICS_FILE);
  }

  get logPath(): string {
    return join(this.dir, LOG_FILE);
  }

  /** The config as written to config.json. */
  async readConfig(): Promise<unknown> {
    return JSON.parse(await readFile(join(this.dir, CONFIG_JSON), 'utf8'));
  }

  /** Append `{ step, split, time, ...record }` to metrics.jsonl (NaN and ±Inf are kept). */
  appendMetrics(
    step: number,
    record: Readonly<Record<string, number>>,
    options: AppendMetricsOptions,
  ): void {
    appendFileSync(
      this.metricsPath,
      formatMetricLine(step, options.split, this.now() / 1000, record),
    );
  }

  /** Append `line` (each of its lines) to log.txt, prefixed with an ISO timestamp. */
  log(line: string): void {
    const stamp = new Date(this.now()).toISOString();
    const text = line
      .split('\n')
      .map((l) => `${stamp} ${l}\n`)
      .join('');
    appendFileSync(this.logPath, text);
  }

  /** Drop the metrics lines of steps after `step` (rewrites metrics.jsonl atomically). */
  async truncateAfter(step: number): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.metricsPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const kept = metricsUpTo(text, step, this.metricsPath);
    if (kept !== text) await writeFileAtomic(this.metricsPath, kept);
  }

  /**
   * Put the run back where its latest checkpoint left it, so it continues as if uninterrupted:
   * metrics of later steps are dropped (all of them when there is no checkpoint) and checkpoint
   * directories that were never committed are deleted. Returns the checkpoint to load, if any.
   */
  async resume(): Promise<CheckpointRef | undefined> {
    const latest = await this.checkpoints.latest();
    await this.truncateAfter(latest === undefined ? -1 : latest.step);
    await this.checkpoints.removeUncommitted();
    this.resumedFrom = latest;
    this.log(
      latest
        ? `resumed from checkpoint step ${latest.step}`
        : 'resumed with no checkpoint: starting over',
    );
    return latest;
  }

  /** Where the checkpoint of `step` goes (`checkpoints/step-000123`); the caller creates and fills it. */
  checkpointDir(step: number): string {
    return this.checkpoints.dir(step);
  }

  /** See `Checkpoints.commit`: latest/best pointers, then keep-last-K retention. */
  async commitCheckpoint(step: number, options: CommitOptions = {}): Promise<CheckpointRef> {
    const ref = await this.checkpoints.commit(step, options);
    this.log(
      `checkpoint step ${step} committed` +
        (options.metric ? ` (${options.metric.name} ${options.metric.value})` : ''),
    );
    return ref;
  }

  latestCheckpoint(): Promise<CheckpointRef | undefined> {
    return this.checkpoints.latest();
  }

  bestCheckpoint(): Promise<BestCheckpointRef | undefined> {
    return this.checkpoints.best();
  }
}
