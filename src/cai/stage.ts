import { appendFileSync, existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrainEvents } from '../algorithms/lm.js';
import { guardRun } from '../algorithms/run-guard.js';
import { TroupeError } from '../errors.js';
import { ProgressTracker } from '../train/progress.js';
import { writeReport } from '../train/report.js';
import { RunDir } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';

/*
 * A resumable data-generation stage (SL-CAI's revisions, RL-CAI's labels) in a run directory of
 * its own, laid out and resumed as every trainer's is: the items are done in fixed batches (a
 * "step" each), every batch's records are appended to records.jsonl, its metrics to
 * metrics.jsonl, and a checkpoint (checkpoints/step-N/stage_state.json: how many records) is
 * committed after it. An interrupted stage resumes from its latest checkpoint: records past it
 * are dropped and their batches done again, with the same draws (each batch's streams are keyed
 * by its step and each item's by its index), so the result equals an uninterrupted run's.
 */

export const RECORDS_FILE = 'records.jsonl';
const STATE_FILE = 'stage_state.json';

export interface DataStage<R> {
  /** What the stage is called in logs (`sl-data`). */
  readonly name: string;
  readonly items: number;
  readonly batchSize: number;
  /** The records of items [lo, hi), the batch `step` (0-based). */
  runBatch(step: number, lo: number, hi: number): Promise<R[]>;
  /** The metrics of one batch's records, logged at its step. */
  metrics(records: readonly R[], seconds: number): Record<string, number>;
}

export interface StageRunOptions {
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  readonly events?: TrainEvents;
}

export interface StageResult<R> {
  readonly records: R[];
  readonly aborted: boolean;
  readonly runDir: string;
}

/** The records of a records.jsonl, the first `keep` of them (a crash-cut last line is dropped). */
async function readRecords<R>(path: string, keep: number): Promise<R[]> {
  if (!existsSync(path)) return [];
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  const out: R[] = [];
  for (const [i, line] of lines.slice(0, keep).entries()) {
    try {
      out.push(JSON.parse(line) as R);
    } catch (e) {
      throw new TroupeError(
        'BAD_DATA',
        `${path}:${i + 1}: not a JSON record (${(e as Error).message})`,
        {
          cause: e,
          details: { file: path, line: i + 1 },
        },
      );
    }
  }
  if (out.length < keep) {
    throw new TroupeError(
      'BAD_DATA',
      `${path} holds ${out.length} records, but the stage's checkpoint counts ${keep}: the records file was edited or cut; start the stage again in a new directory`,
      { details: { file: path } },
    );
  }
  return out;
}

/**
 * A resume must generate what the first start would have: the records kept were made under the
 * config in `dir`, so a different one is refused, naming the fields that differ.
 */
async function refuseChangedConfig(dir: string, config: unknown): Promise<void> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return;
  const was = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  const now = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  const differ = [...new Set([...Object.keys(was), ...Object.keys(now)])].flatMap((k) => {
    const [a, b] = [was[k], now[k]];
    if (JSON.stringify(a) === JSON.stringify(b)) return [];
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b as object)])];
      return keys
        .filter((j) => JSON.stringify((a as never)[j]) !== JSON.stringify((b as never)[j]))
        .map((j) => `${k}.${j}`);
    }
    return [k];
  });
  if (differ.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Cannot resume ${dir}: its records were made under another config (${differ.join(', ')} differ); put those fields back, or start the run in a new directory`,
      { details: { dir, fields: differ } },
    );
  }
}

/** Run (or resume) a stage in `dir`; `config` is what its config.json records. */
export async function runDataStage<R>(
  dir: string,
  config: unknown,
  stage: DataStage<R>,
  o: StageRunOptions = {},
): Promise<StageResult<R>> {
  if (o.resume) await refuseChangedConfig(dir, config);
  const run = await RunDir.create(dir, { config, resume: o.resume ?? false, keepLast: 2 });
  return guardRun(run, async () => {
    const path = join(run.dir, RECORDS_FILE);
    const resumed = run.resumedFrom;
    const done = resumed
      ? (JSON.parse(await readFile(join(resumed.dir, STATE_FILE), 'utf8')) as { records: number })
          .records
      : 0;
    const records = await readRecords<R>(path, done);
    // Records past the checkpoint were written by a batch whose checkpoint never landed.
    await writeFileAtomic(path, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const batches = Math.ceil(stage.items / stage.batchSize);
    const first = Math.ceil(done / stage.batchSize);
    run.log(
      `${stage.name}: ${stage.items} items in ${batches} batches of ${stage.batchSize}` +
        (first > 0 ? `; resuming after batch ${first} (${done} records kept)` : ''),
    );
    const progress = new ProgressTracker({ total: Math.max(1, batches), initial: first });
    let aborted = false;
    for (let b = first; b < batches; b++) {
      if (o.signal?.aborted) {
        aborted = true;
        run.log(`${stage.name}: interrupted after batch ${b}; resume continues from it`);
        break;
      }
      const t0 = performance.now();
      const lo = b * stage.batchSize;
      const hi = Math.min(stage.items, lo + stage.batchSize);
      const got = await stage.runBatch(b, lo, hi);
      appendFileSync(path, got.map((r) => `${JSON.stringify(r)}\n`).join(''));
      records.push(...got);
      const values = stage.metrics(got, (performance.now() - t0) / 1000);
      run.appendMetrics(b + 1, values, { split: 'train' });
      o.events?.onMetrics?.('train', b + 1, values);
      const ckpt = run.checkpointDir(b + 1);
      await mkdir(ckpt, { recursive: true });
      await writeFileAtomic(join(ckpt, STATE_FILE), `${JSON.stringify({ records: hi })}\n`);
      await run.commitCheckpoint(b + 1);
      o.events?.onProgress?.(progress.update(b + 1, { values }));
    }
    if (!aborted) run.log(`${stage.name}: done, ${records.length} records in ${path}`);
    await writeReport(run);
    return { records, aborted, runDir: run.dir };
  });
}
