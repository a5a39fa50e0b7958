import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TrainEvents, trainLm } from '../algorithms/lm.js';
import { modelConfig, runTokenizer, textOf } from '../algorithms/model-setup.js';
import { loadConfig } from '../config/load.js';
import type { PretrainConfig } from '../config/schema.js';
import { loadTrainEval, trainEvalFiles } from '../data/split.js';
import { type BpeTokenizer, loadTokenizer } from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { readTrainerState } from '../train/trainer-state.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { SweepConfig } from './config.js';
import { jobConfig, type PlannedJob, planJobs } from './jobs.js';
import { type SweepRow, writeTable } from './table.js';

/*
 * The sweep runner: the shared tokenizer, then each job as a `troupe pretrain` run in its own
 * directory (jobs/<id>/). Resumable job by job: a job with its result.json is skipped, one
 * interrupted (Ctrl-C, a crash, a kill) resumes from its latest checkpoint, exactly as
 * `troupe pretrain --resume` would. The table (results.csv / results.json) is rewritten after
 * every job, so a sweep stopped half-way leaves the rows it has.
 */

/** The file a finished job leaves in its directory: its row of the table. */
export const JOB_RESULT = 'result.json';

export interface SweepEvents {
  /** A job is about to start: `index` of `total`, and whether it is skipped or resumed. */
  onJob?(job: PlannedJob, index: number, total: number, how: 'train' | 'resume' | 'skip'): void;
  onJobDone?(row: SweepRow, index: number, total: number): void;
  /** The events of the job under way (its progress line, evals, actor warnings). */
  job?: TrainEvents;
  onLog?(line: string): void;
}

export interface SweepOptions {
  readonly signal?: AbortSignal;
  readonly events?: SweepEvents;
}

export interface SweepOutcome {
  readonly rows: readonly SweepRow[];
  readonly jobs: readonly PlannedJob[];
  readonly skipped: readonly string[];
  readonly resumed: readonly string[];
  readonly trained: readonly string[];
  /** True when the signal stopped the sweep (the job under way is checkpointed). */
  readonly aborted: boolean;
}

/** JSON with sorted keys: two configs are the same job when these strings are equal. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  );
}

/**
 * The sweep's tokenizer: `pretrain.model.tokenizer` when it is a path, else one trained once on
 * the training split (as `troupe pretrain` would) and saved to <output>/tokenizer, so that every
 * job, and a resumed sweep, reads the same vocabulary.
 */
async function sweepTokenizer(
  sweep: SweepConfig,
  probe: PretrainConfig,
): Promise<{ tok: BpeTokenizer; path: string | undefined }> {
  const spec = probe.model.tokenizer;
  if (typeof spec === 'string') return { tok: await loadTokenizer(spec), path: undefined };
  const dir = join(sweep.output, 'tokenizer');
  if (existsSync(join(dir, 'tokenizer.json'))) return { tok: await loadTokenizer(dir), path: dir };
  const data = await loadTrainEval(trainEvalFiles(probe.data, probe.seed));
  await mkdir(sweep.output, { recursive: true });
  const tok = await runTokenizer(probe, { dir: sweep.output, resumedFrom: undefined }, () =>
    data.train.flatMap(textOf),
  );
  return { tok, path: dir };
}

/** Tokens of one pass over the training split (each document and its EOS), for `epochs`. */
async function trainTokens(probe: PretrainConfig, tok: BpeTokenizer): Promise<number> {
  const data = await loadTrainEval(trainEvalFiles(probe.data, probe.seed));
  let n = 0;
  for (const e of data.train)
    for (const t of textOf(e)) n += tok.encode(t, { addSpecialTokens: false }).length + 1;
  return n;
}

/** Plan every job and validate its pretraining config; nothing trains yet. */
export async function planSweep(sweep: SweepConfig): Promise<{
  jobs: PlannedJob[];
  configs: Map<string, PretrainConfig>;
  trainTokens: number;
}> {
  const first = sweep.models[0];
  const probeObject = jobConfig(
    sweep,
    first,
    sweep.minSteps,
    join(sweep.output, 'jobs'),
    undefined,
  );
  const validate = (id: string, object: Record<string, unknown>) =>
    loadConfig<PretrainConfig>('pretrain', { object }).catch((e: Error) => {
      throw new TroupeError('BAD_ARGUMENT', `sweep job ${id}: ${e.message}`, { cause: e });
    });
  const probe = await validate(`(${first.name})`, probeObject);
  const { tok, path } = await sweepTokenizer(sweep, probe);
  const configOf = (m: SweepConfig['models'][number]) =>
    modelConfig(
      {
        ...probe,
        model: { ...probe.model, init: { ...probe.model.init!, ...m } },
      } as PretrainConfig,
      tok,
    );
  const mconfigs = new Map<string, Awaited<ReturnType<typeof configOf>>>();
  for (const m of sweep.models) mconfigs.set(m.name, await configOf(m));
  const jobs = planJobs(sweep, (m) => mconfigs.get(m.name)!, path);
  const configs = new Map<string, PretrainConfig>();
  for (const j of jobs) configs.set(j.id, await validate(j.id, j.config));
  return { jobs, configs, trainTokens: await trainTokens(probe, tok) };
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** A job whose directory holds another config than the one planned is refused, never mixed. */
async function checkSameJob(job: PlannedJob, config: PretrainConfig): Promise<void> {
  const stored = join(job.dir, 'config.json');
  if (!existsSync(stored)) return;
  if (canonical(await readJson(stored)) !== canonical(config)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `sweep job ${job.id}: ${job.dir} holds a run of another config than this sweep plans for it (the sweep config changed since it ran): delete that directory to train it again, or give the sweep another output`,
      { details: { job: job.id, dir: job.dir } },
    );
  }
}

/** The final eval of a job: this invocation's, or (a job that had finished its steps) its checkpoint's. */
async function finalEval(
  job: PlannedJob,
  r: Awaited<ReturnType<typeof trainLm>>,
): Promise<Readonly<Record<string, number>>> {
  if (r.finalEval && r.finalEvalStep === job.steps) return r.finalEval;
  const state = r.checkpoint ? await readTrainerState(r.checkpoint) : undefined;
  const ev = (state?.extra as { eval?: Record<string, number> } | undefined)?.eval;
  if (state?.step === job.steps && ev?.['loss'] !== undefined) return ev;
  throw new TroupeError(
    'BAD_ARGUMENT',
    `sweep job ${job.id}: finished without an eval of its last step (step ${job.steps}): does the config give eval data (pretrain.data.eval or evalFraction > 0)?`,
    { details: { job: job.id } },
  );
}

/** Run (or continue) a sweep. */
export async function runSweep(sweep: SweepConfig, o: SweepOptions = {}): Promise<SweepOutcome> {
  const ev = o.events ?? {};
  const { jobs, configs, trainTokens: epochTokens } = await planSweep(sweep);
  await mkdir(sweep.output, { recursive: true });
  await writeFileAtomic(join(sweep.output, 'sweep.json'), `${JSON.stringify(sweep, null, 2)}\n`);
  const rows: SweepRow[] = [];
  const skipped: string[] = [];
  const resumed: string[] = [];
  const trained: string[] = [];
  let aborted = false;
  for (const [i, job] of jobs.entries()) {
    const config = configs.get(job.id)!;
    await checkSameJob(job, config);
    const resultFile = join(job.dir, JOB_RESULT);
    if (existsSync(resultFile)) {
      ev.onJob?.(job, i, jobs.length, 'skip');
      skipped.push(job.id);
      rows.push((await readJson(resultFile)) as SweepRow);
      continue;
    }
    if (o.signal?.aborted) {
      aborted = true;
      break;
    }
    const resuming = existsSync(join(job.dir, 'config.json'));
    ev.onJob?.(job, i, jobs.length, resuming ? 'resume' : 'train');
    const t0 = performance.now();
    const r = await trainLm(config, { resume: true, signal: o.signal, events: ev.job });
    if (r.aborted) {
      aborted = true;
      break;
    }
    (resuming ? resumed : trained).push(job.id);
    const e = await finalEval(job, r);
    const row: SweepRow = {
      id: job.id,
      model: job.model.name,
      hidden: job.model.hidden,
      layers: job.model.layers,
      heads: job.model.heads,
      params: job.params.total,
      nonEmbeddingParams: job.params.nonEmbedding,
      tokens: job.tokens,
      flops: job.flops,
      budgetKind: job.budget.kind,
      budget: job.budget.value,
      steps: job.steps,
      epochs: job.tokens / epochTokens,
      lr: config.optim.lr,
      loss: e['loss'],
      perplexity: e['perplexity'] ?? Math.exp(e['loss']),
      seconds: (performance.now() - t0) / 1000,
    };
    // The job's result marks it done (a rerun skips it): never half of one.
    await writeFileAtomic(resultFile, `${JSON.stringify(row, null, 2)}\n`);
    rows.push(row);
    await writeTable(sweep.output, rows, sweep.parameters);
    ev.onJobDone?.(row, i, jobs.length);
  }
  await writeTable(sweep.output, rows, sweep.parameters);
  return { rows, jobs, skipped, resumed, trained, aborted };
}
