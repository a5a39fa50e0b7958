import { appendFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import {
  type BestCheckpointRef,
  type CheckpointRef,
  Checkpoints,
  type CommitOptions,
} from './checkpoints.js';
import { CHECKPOINTS_DIR, CONFIG_JSON, CONFIG_YAML, LOG_FILE, METRICS_FILE } from './files.js';
import { DEFAULT_LIVE_REPORT, LiveReport, type LiveReportOptions } from './live-report.js';
import { formatMetricLine, metricsUpTo, parseMetrics, type Split } from './metrics.js';
import {
  eventFileName,
  fileVersionEvent,
  metricsRecord,
  TROUPE_EVENT_FILE,
  tfRecord,
} from './tfevents.js';

/**
 * A training run's directory:
 *
 *   config.yaml, config.json     the resolved config (YAML to read, JSON to load)
 *   metrics.jsonl                one line per logged step and split (see ./metrics.ts)
 *   events.out.tfevents.….troupe the same metrics for TensorBoard (see ./tfevents.ts)
 *   log.txt                      timestamped log lines
 *   checkpoints/                 step-N directories and the latest/best pointers (see ./checkpoints.ts)
 *   report.html                  kept current while the run goes (./live-report.ts), and written
 *                                by `writeReport` when it ends
 *
 * Appends to metrics.jsonl, the event file and log.txt are synchronous, one write per line: they
 * stay in order, cannot be left un-awaited, and a crash cuts at most the last line (which readers
 * drop). The event file is derived from metrics.jsonl: a resume writes it anew from the lines
 * kept. Every other file is written to a temporary file and renamed over its name.
 * (Past 300 lines: one class owns every file of the directory, its resume and its truncation of
 * metrics past the resumed step.)
 */
export { CHECKPOINTS_DIR, CONFIG_JSON, CONFIG_YAML, LOG_FILE, METRICS_FILE } from './files.js';

export interface RunDirOptions {
  /** Keep this many most recent checkpoints, plus the best; default all. */
  readonly keepLast?: number;
  /** Clock in milliseconds since the epoch (tests inject one); default `Date.now`. */
  readonly now?: () => number;
  /** Write TensorBoard event files beside metrics.jsonl. Default true. */
  readonly tensorboard?: boolean;
  /**
   * Keep report.html current while the run goes (after each eval, and every `minIntervalMs`
   * of train steps; see ./live-report.ts), or not (false). Default on.
   */
  readonly liveReport?: boolean | Partial<LiveReportOptions>;
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
  private readonly tensorboard: boolean;
  private live: LiveReport | undefined;
  /** The event file appends go to; made at the first append (or by a resume). */
  private eventsPath: string | undefined;

  private constructor(dir: string, options: RunDirOptions) {
    this.dir = dir;
    this.now = options.now ?? Date.now;
    this.checkpoints = new Checkpoints(join(dir, CHECKPOINTS_DIR), options.keepLast);
    this.tensorboard = options.tensorboard ?? true;
    const live = options.liveReport ?? true;
    this.live =
      live === false
        ? undefined
        : new LiveReport(
            dir,
            { ...DEFAULT_LIVE_REPORT, ...(live === true ? {} : live) },
            this.now,
            (e) => this.log(`report.html could not be rewritten during the run: ${e.message}`),
          );
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

  /**
   * Append `{ step, split, time, ...record }` to metrics.jsonl (NaN and ±Inf are kept) and to the
   * TensorBoard event file, then rewrite the live report if it is time.
   */
  appendMetrics(
    step: number,
    record: Readonly<Record<string, number>>,
    options: AppendMetricsOptions,
  ): void {
    const time = this.now() / 1000;
    appendFileSync(this.metricsPath, formatMetricLine(step, options.split, time, record));
    if (this.tensorboard) {
      if (this.eventsPath === undefined) {
        this.eventsPath = join(this.dir, eventFileName(time));
        appendFileSync(this.eventsPath, tfRecord(fileVersionEvent(time)));
      }
      appendFileSync(this.eventsPath, metricsRecord(time, step, options.split, record));
    }
    this.live?.after(options.split);
  }

  /** Stop rewriting report.html after appends (`writeReport` calls it: its report is the last). */
  endLiveReport(): void {
    this.live = undefined;
  }

  /** The TensorBoard event files Troupe wrote in this run directory. */
  eventFiles(): string[] {
    return readdirSync(this.dir)
      .filter((f) => TROUPE_EVENT_FILE.test(f))
      .map((f) => join(this.dir, f));
  }

  /** Write the event file anew from a metrics.jsonl text, replacing the ones there. */
  private async rewriteEvents(metricsText: string): Promise<void> {
    for (const f of this.eventFiles()) rmSync(f, { force: true });
    this.eventsPath = undefined;
    const rows = parseMetrics(metricsText, this.metricsPath);
    if (rows.length === 0) return;
    const path = join(this.dir, eventFileName(this.now() / 1000));
    const records = [
      tfRecord(fileVersionEvent(rows[0]!.time)),
      ...rows.map((r) => metricsRecord(r.time, r.step, r.split, r.values)),
    ];
    await writeFileAtomic(path, Buffer.concat(records));
    this.eventsPath = path;
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

  /**
   * Drop the metrics lines of steps after `step` (rewrites metrics.jsonl atomically), and write
   * the event file anew from the lines kept (which also drops a record a crash cut short).
   */
  async truncateAfter(step: number): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.metricsPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      text = '';
    }
    const kept = metricsUpTo(text, step, this.metricsPath);
    if (kept !== text) await writeFileAtomic(this.metricsPath, kept);
    if (this.tensorboard) await this.rewriteEvents(kept);
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
