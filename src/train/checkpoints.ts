import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * A run's checkpoints:
 *
 *   checkpoints/step-000100/     one directory per checkpoint; the caller writes its files
 *   checkpoints/step-000200/
 *   checkpoints/latest.json      { "step": 200, "dir": "step-000200" }
 *   checkpoints/best.json        { "step": 100, "dir": "step-000100", "metric": { name, value, mode } }
 *
 * A checkpoint exists once it is committed: `latest.json` moves to it only after its files are
 * written, so a crash mid-save leaves `latest.json` on the previous one. The pointers are plain
 * JSON files (not symlinks, which Windows and some file systems lack) with paths relative to
 * `checkpoints/`, so a run directory can be moved or copied.
 */
export const LATEST_FILE = 'latest.json';
export const BEST_FILE = 'best.json';

export interface CheckpointRef {
  readonly step: number;
  /** Absolute path of the checkpoint's directory. */
  readonly dir: string;
}

/** The eval metric that ranks checkpoints; `mode` says whether lower or higher is better. */
export interface CheckpointMetric {
  readonly name: string;
  readonly value: number;
  readonly mode: 'min' | 'max';
}

export interface BestCheckpointRef extends CheckpointRef {
  readonly metric: CheckpointMetric;
}

export interface CommitOptions {
  /** This checkpoint's eval metric; it becomes the best when it beats the best so far. */
  readonly metric?: CheckpointMetric;
}

const STEP_DIR = /^step-(\d+)$/;

/** `step-000123`: zero-padded so that directory listings sort by step. */
export const stepDirName = (step: number): string => `step-${String(step).padStart(6, '0')}`;

function badPointer(file: string, what: string, field?: string): TroupeError {
  return new TroupeError('BAD_CHECKPOINT', `${file}: ${what}`, { details: { file, field } });
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

function checkStep(step: number, what: string): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${what}: step must be a non-negative integer, got ${step}.`,
      {
        details: { step },
      },
    );
  }
}

function checkMetric(m: CheckpointMetric): void {
  const bad = (field: string, what: string) =>
    new TroupeError('BAD_ARGUMENT', `commitCheckpoint: metric.${field} ${what}`, {
      details: { field: `metric.${field}` },
    });
  if (typeof m.name !== 'string' || m.name === '') throw bad('name', 'must be a non-empty string.');
  if (m.mode !== 'min' && m.mode !== 'max')
    throw bad('mode', `must be 'min' or 'max', got '${m.mode}'.`);
  if (typeof m.value !== 'number') throw bad('value', `must be a number, got ${typeof m.value}.`);
}

export class Checkpoints {
  /**
   * @param root the `checkpoints/` directory.
   * @param keepLast keep this many most recent checkpoints (plus the best); undefined keeps all.
   */
  constructor(
    readonly root: string,
    readonly keepLast?: number,
  ) {
    if (keepLast !== undefined && (!Number.isInteger(keepLast) || keepLast < 1)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `keepLast must be a positive integer (the latest checkpoint is always kept), got ${keepLast}.`,
        { details: { keepLast } },
      );
    }
  }

  /** Where the checkpoint of `step` goes: `checkpoints/step-000123` (not created here). */
  dir(step: number): string {
    checkStep(step, 'checkpointDir');
    return join(this.root, stepDirName(step));
  }

  /**
   * Make the checkpoint of `step`, whose files the caller has written into `dir(step)`, the
   * latest; make it the best when its metric beats the best's; then delete checkpoints beyond
   * the last `keepLast`, never the latest or the best.
   */
  async commit(step: number, options: CommitOptions = {}): Promise<CheckpointRef> {
    const dir = this.dir(step);
    if (!(await isDirectory(dir))) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `commitCheckpoint(${step}): ${dir} does not exist; write the checkpoint's files into checkpointDir(${step}) first.`,
        { details: { step, dir } },
      );
    }
    const { metric } = options;
    if (metric) checkMetric(metric);
    const latest = await this.latest();
    if (latest && step < latest.step) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `commitCheckpoint(${step}): the latest checkpoint is already step ${latest.step}; steps must not go back.`,
        { details: { step, latest: latest.step } },
      );
    }
    let best = await this.best();
    if (metric && best && (best.metric.name !== metric.name || best.metric.mode !== metric.mode)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `commitCheckpoint(${step}): ${BEST_FILE} ranks checkpoints by '${best.metric.name}' (${best.metric.mode}), ` +
          `not '${metric.name}' (${metric.mode}); pass the same metric at every commit.`,
        { details: { step, metric: metric.name, bestMetric: best.metric.name } },
      );
    }
    const name = stepDirName(step);
    // latest before best: a crash between the two leaves best.json stale, never ahead of latest.
    await writeFileAtomic(join(this.root, LATEST_FILE), `${JSON.stringify({ step, dir: name })}\n`);
    if (metric && isBetter(metric, best?.metric)) {
      await writeFileAtomic(
        join(this.root, BEST_FILE),
        `${JSON.stringify({ step, dir: name, metric }, null, 2)}\n`,
      );
      best = { step, dir, metric };
    }
    await this.applyRetention(step, best?.step);
    return { step, dir };
  }

  /** The latest committed checkpoint, or undefined before the first commit. */
  async latest(): Promise<CheckpointRef | undefined> {
    const raw = await this.readPointer(LATEST_FILE);
    return raw && { step: raw.step, dir: raw.dir };
  }

  /** The best committed checkpoint by its eval metric, or undefined when none was ranked. */
  async best(): Promise<BestCheckpointRef | undefined> {
    const raw = await this.readPointer(BEST_FILE);
    if (!raw) return undefined;
    const m = raw.json['metric'] as Partial<CheckpointMetric> | undefined;
    const file = join(this.root, BEST_FILE);
    if (typeof m !== 'object' || m === null)
      throw badPointer(file, `field 'metric' is missing`, 'metric');
    if (typeof m.name !== 'string')
      throw badPointer(file, `field 'metric.name' must be a string`, 'metric.name');
    if (typeof m.value !== 'number')
      throw badPointer(file, `field 'metric.value' must be a number`, 'metric.value');
    if (m.mode !== 'min' && m.mode !== 'max') {
      throw badPointer(file, `field 'metric.mode' must be 'min' or 'max'`, 'metric.mode');
    }
    return { step: raw.step, dir: raw.dir, metric: { name: m.name, value: m.value, mode: m.mode } };
  }

  /**
   * Delete checkpoint directories of steps after the latest commit (or all of them before the
   * first): the leftovers of a save that a crash interrupted. Returns the steps deleted.
   */
  async removeUncommitted(): Promise<number[]> {
    const latest = await this.latest();
    const stale = (await this.listSteps()).filter((s) => latest === undefined || s > latest.step);
    await Promise.all(stale.map((s) => rm(this.dir(s), { recursive: true, force: true })));
    return stale;
  }

  /** Steps of the `step-N` directories present, ascending. */
  async listSteps(): Promise<number[]> {
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && STEP_DIR.test(e.name))
      .map((e) => Number(STEP_DIR.exec(e.name)![1]))
      .sort((a, b) => a - b);
  }

  private async applyRetention(latest: number, best: number | undefined): Promise<void> {
    if (this.keepLast === undefined) return;
    const committed = (await this.listSteps()).filter((s) => s <= latest);
    const keep = new Set(committed.slice(-this.keepLast));
    keep.add(latest);
    if (best !== undefined) keep.add(best);
    const drop = committed.filter((s) => !keep.has(s));
    await Promise.all(drop.map((s) => rm(this.dir(s), { recursive: true, force: true })));
  }

  private async readPointer(
    name: string,
  ): Promise<{ step: number; dir: string; json: Record<string, unknown> } | undefined> {
    const file = join(this.root, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TroupeError('BAD_CHECKPOINT', `${file}: not JSON`, { details: { file }, cause: e });
    }
    if (typeof json !== 'object' || json === null) throw badPointer(file, 'not a JSON object');
    const { step, dir } = json as Record<string, unknown>;
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) {
      throw badPointer(file, `field 'step' must be a non-negative integer`, 'step');
    }
    if (typeof dir !== 'string' || !STEP_DIR.test(dir)) {
      throw badPointer(file, `field 'dir' must name a step-N directory`, 'dir');
    }
    const abs = join(this.root, dir);
    if (!(await isDirectory(abs))) {
      throw badPointer(
        file,
        `points at ${dir}, which does not exist (was it deleted by hand?)`,
        'dir',
      );
    }
    return { step, dir: abs, json: json as Record<string, unknown> };
  }
}

/** A finite metric beats no best at all, and beats the best when strictly better. */
function isBetter(m: CheckpointMetric, best: CheckpointMetric | undefined): boolean {
  if (!Number.isFinite(m.value)) return false;
  if (best === undefined) return true;
  return m.mode === 'min' ? m.value < best.value : m.value > best.value;
}
