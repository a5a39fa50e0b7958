import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import type { TrainEvents, TrainResult } from '../algorithms/lm.js';
import { loadExamples } from '../data/datasets/index.js';
import { TroupeError } from '../errors.js';
import { startRuntime } from '../kernels/runtime.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { CaiConfig } from './config.js';
import { type Constitution, loadConstitution } from './constitution.js';
import { promptTurns } from './dialogue.js';
import { EndpointModel } from './endpoint.js';
import { LocalModel } from './local-model.js';
import type { CaiModel } from './model.js';
import type { PromptItem } from './sl.js';

/*
 * A CAI run's directory and what its stages share: the top-level log.txt, config and
 * stages.json (what each finished stage produced), the models (a Troupe checkpoint on this
 * thread's runtime, or an endpoint), and the trainer stages' resume rule (a stage whose
 * directory holds a run resumes it).
 */

export type CaiStage = 'sl' | 'rl';

export interface CaiRunOptions {
  readonly resume?: boolean;
  readonly signal?: AbortSignal;
  readonly events?: TrainEvents;
  /** Which halves to run (default: those the config has). */
  readonly stages?: readonly CaiStage[];
  /** The config file, for error messages. */
  readonly file?: string;
}

export const STAGES_FILE = 'stages.json';

export const jsonl = (rows: readonly unknown[]) =>
  rows.map((r) => `${JSON.stringify(r)}\n`).join('');

/** The prompts of a prompt file as items (the first `limit`). */
export async function promptItems(
  file: string,
  columns: Readonly<Record<string, string>> | undefined,
  limit: number | undefined,
): Promise<PromptItem[]> {
  const rows = await loadExamples(file, { format: 'prompt', columns });
  return rows.slice(0, limit ?? rows.length).map((e) => {
    const prompt = (e as { prompt: PromptItem['prompt'] }).prompt;
    return { prompt, turns: promptTurns(prompt) };
  });
}

export class CaiRun {
  readonly dir: string;
  done: Record<string, Record<string, unknown>> = {};
  constitution!: Constitution;
  private runtimeStarted = false;

  constructor(
    readonly c: CaiConfig,
    readonly o: CaiRunOptions,
  ) {
    this.dir = resolve(c.output);
  }

  log(message: string): void {
    const stamp = new Date().toISOString();
    const text = message
      .split('\n')
      .map((l) => `${stamp} ${l}\n`)
      .join('');
    // One synchronous append per message, as a run directory's log.txt.
    appendFileSync(join(this.dir, 'log.txt'), text);
    this.o.events?.onLog?.({ actor: 'trainer', level: 'info', message, time: Date.now() });
  }

  async open(): Promise<void> {
    const entries = existsSync(this.dir) ? readdirSync(this.dir) : [];
    if (entries.length > 0 && !this.o.resume) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Run directory ${this.dir} is not empty (${entries.slice(0, 5).join(', ')}). Pass --resume to continue the run in it, or choose another output.`,
        { details: { dir: this.dir } },
      );
    }
    if (entries.length > 0 && !entries.includes('config.json')) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Cannot resume in ${this.dir}: it holds no config.json, so it is not a CAI run directory.`,
      );
    }
    await mkdir(this.dir, { recursive: true });
    if (entries.includes(STAGES_FILE))
      this.done = JSON.parse(await readFile(join(this.dir, STAGES_FILE), 'utf8'));
    await writeFileAtomic(join(this.dir, 'config.json'), `${JSON.stringify(this.c, null, 2)}\n`);
    await writeFileAtomic(join(this.dir, 'config.yaml'), stringifyYaml(this.c));
    this.log(
      entries.length > 0
        ? `resumed; stages done: ${Object.keys(this.done).join(', ') || 'none'}`
        : 'CAI run started',
    );
    this.constitution = await loadConstitution(this.c.constitution);
  }

  async finish(stage: string, summary: Record<string, unknown>): Promise<void> {
    this.done[stage] = summary;
    await writeFileAtomic(join(this.dir, STAGES_FILE), `${JSON.stringify(this.done, null, 2)}\n`);
    this.log(`stage ${stage} done: ${JSON.stringify(summary)}`);
  }

  resumeOf(stage: string): boolean {
    return existsSync(join(this.dir, stage, 'config.json'));
  }

  /**
   * What a data stage's output depends on (its config.json): the shared fields, the
   * constitution as it was read, and its half's section without the trainer sections. A resume
   * under a different one is refused (see `runDataStage`).
   */
  stageConfig(stage: 'sl-data' | 'rl-data', sampler?: string): Record<string, unknown> {
    const { seed, dialogue, policy, batchSize, constitution } = this.c;
    const shared = { stage, seed, dialogue, policy, batchSize, constitution };
    if (stage === 'sl-data') {
      const { sft: _, ...sl } = this.c.sl!;
      return { ...shared, sl, rules: this.constitution };
    }
    const { rm: _r, ppo: _p, ...rl } = this.c.rl!;
    return { ...shared, rl, sampler, rules: this.constitution };
  }

  /** A Troupe model or an endpoint; `field` names it in errors. */
  async model(ref: CaiConfig['policy'] | { endpoint: unknown }, field: string): Promise<CaiModel> {
    if (typeof ref === 'object') {
      return new EndpointModel(
        (ref as { endpoint: ConstructorParameters<typeof EndpointModel>[0] }).endpoint,
        this.constitution.stop,
      );
    }
    if (!this.runtimeStarted) {
      await startRuntime({ backend: this.c.backend });
      this.runtimeStarted = true;
    }
    return LocalModel.load(ref, field, {
      chat: this.c.dialogue === 'chat',
      stop: this.constitution.stop,
      log: (m) => this.log(m),
    });
  }

  /** Run a trainer stage (resuming it when its directory holds a run), or take its result. */
  async train(
    stage: string,
    go: (resume: boolean) => Promise<TrainResult>,
  ): Promise<Record<string, unknown> | undefined> {
    if (this.done[stage]) return this.done[stage];
    const resume = this.resumeOf(stage);
    this.log(`stage ${stage}${resume ? ' (resuming)' : ''}`);
    const t0 = performance.now();
    const r = await go(resume);
    if (r.aborted) return undefined;
    const summary = {
      runDir: r.runDir,
      checkpoint: r.checkpoint,
      steps: r.steps,
      finalEval: r.finalEval,
      seconds: (performance.now() - t0) / 1000,
    };
    await this.finish(stage, summary);
    return summary;
  }

  trainOpts(resume: boolean) {
    return { resume, signal: this.o.signal, events: this.o.events };
  }

  /** The SL-CAI model: the SFT stage's checkpoint, or the policy when there was no SL stage. */
  slModel(): string {
    return (this.done['sft']?.['checkpoint'] as string | undefined) ?? this.c.policy;
  }
}
