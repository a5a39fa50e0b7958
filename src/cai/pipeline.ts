import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import type { TrainEvents, TrainResult } from '../algorithms/lm.js';
import { trainLm } from '../algorithms/lm.js';
import { trainPreference } from '../algorithms/preference.js';
import { trainRl } from '../algorithms/rl.js';
import type { RlConfig, RmConfig, SftConfig } from '../config/schema.js';
import { loadExamples } from '../data/datasets/index.js';
import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';
import { startRuntime } from '../kernels/runtime.js';
import { writeFileAtomic } from '../policy/checkpoint/atomic.js';
import { type CaiConfig, trainerConfig } from './config.js';
import { type Constitution, loadConstitution } from './constitution.js';
import { promptTurns, renderText } from './dialogue.js';
import { EndpointModel } from './endpoint.js';
import { Labeller } from './feedback.js';
import { LocalModel } from './local-model.js';
import { helpfulRows } from './mix.js';
import type { CaiModel } from './model.js';
import { rlStage, rmRows } from './rl.js';
import { type PromptItem, type SlRecord, slOutputs, slStage } from './sl.js';
import { runDataStage } from './stage.js';

/*
 * The Constitutional AI pipeline in one run directory:
 *
 *   sl-data/  SL-CAI's critiques and revisions (records.jsonl), then sft.jsonl and pairs.jsonl
 *   sft/      `troupe sft` of the policy on sft.jsonl: the SL-CAI model
 *   rl-data/  RL-CAI's response pairs and AI labels (records.jsonl), then rm-pairs.jsonl, prompts.jsonl
 *   rm/       `troupe rm` on rm-pairs.jsonl (soft-bradley-terry)
 *   ppo/      `troupe ppo` from the SL-CAI model against that reward model, KL to the SL-CAI model
 *   stages.json  what each finished stage produced; log.txt; config.yaml / config.json
 *
 * Each stage is resumable as its trainer is (a data stage by its batches); a resumed run skips
 * the stages stages.json lists as done and resumes the one under way.
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

export interface CaiResult {
  readonly runDir: string;
  readonly aborted: boolean;
  /** What each finished stage produced (stages.json). */
  readonly stages: Readonly<Record<string, Record<string, unknown>>>;
}

const STAGES_FILE = 'stages.json';

const jsonl = (rows: readonly unknown[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

/** The prompts of a prompt file as items (the first `limit`). */
async function promptItems(
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

class Pipeline {
  private readonly dir: string;
  private done: Record<string, Record<string, unknown>> = {};
  private constitution!: Constitution;
  private runtimeStarted = false;

  constructor(
    private readonly c: CaiConfig,
    private readonly o: CaiRunOptions,
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

  private async finish(stage: string, summary: Record<string, unknown>): Promise<void> {
    this.done[stage] = summary;
    await writeFileAtomic(join(this.dir, STAGES_FILE), `${JSON.stringify(this.done, null, 2)}\n`);
    this.log(`stage ${stage} done: ${JSON.stringify(summary)}`);
  }

  private resumeOf(stage: string): boolean {
    return existsSync(join(this.dir, stage, 'config.json'));
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
  private async train(
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

  private trainOpts(resume: boolean) {
    return { resume, signal: this.o.signal, events: this.o.events };
  }

  async sl(): Promise<boolean> {
    const sl = this.c.sl!;
    const where = { file: this.o.file ?? '(config object)', field: 'sl.sft' };
    const dataDir = join(this.dir, 'sl-data');
    // Checked before any generation, so that a bad trainer section fails at once.
    const sftOf = (train: string) =>
      trainerConfig<SftConfig>(
        'sft',
        sl.sft,
        {
          output: join(this.dir, 'sft'),
          seed: this.c.seed,
          model: { path: this.c.policy },
          data: { train, format: 'completion' },
        },
        where,
      );
    sftOf(join(dataDir, 'sft.jsonl'));
    if (!this.done['sl-data']) {
      const t0 = performance.now();
      const prompts = await promptItems(sl.prompts, sl.columns, sl.limit);
      const model = await this.model(sl.model ?? this.c.policy, sl.model ? 'sl.model' : 'policy');
      try {
        this.log(
          `stage sl-data: ${prompts.length} prompts, ${sl.revisions} revisions each, by ${model.describe}`,
        );
        const stage = slStage(
          model,
          this.constitution,
          prompts,
          {
            seed: this.c.seed,
            revisions: sl.revisions,
            shots: sl.fewShot,
            maxTokens: sl.generation.maxNewTokens,
            temperature: sl.generation.temperature,
            topP: sl.generation.topP,
          },
          this.c.batchSize,
        );
        const r = await runDataStage<SlRecord>(dataDir, { stage: 'sl-data', ...this.c }, stage, {
          resume: this.resumeOf('sl-data'),
          signal: this.o.signal,
          events: this.o.events,
        });
        if (r.aborted) return false;
        const { sft, pairs } = slOutputs(
          this.constitution,
          this.c.dialogue,
          r.records,
          (x) => promptTurns(x.prompt),
          sl.keep,
        );
        const helpful = sl.helpful
          ? await helpfulRows(sl.helpful, sft.length, {
              seed: this.c.seed,
              model,
              constitution: this.constitution,
              dialogue: this.c.dialogue,
              generation: sl.generation,
              batchSize: this.c.batchSize,
            })
          : [];
        const rows = mixRows(sft, helpful, this.c.seed);
        await writeFileAtomic(join(dataDir, 'sft.jsonl'), jsonl(rows));
        await writeFileAtomic(join(dataDir, 'pairs.jsonl'), jsonl(pairs));
        const rounds = r.records.flatMap((x) => x.rounds);
        await this.finish('sl-data', {
          runDir: dataDir,
          prompts: r.records.length,
          revisionRows: sft.length,
          helpfulRows: helpful.length,
          dpoPairs: pairs.length,
          strippedPreambles: rounds.filter((x) => x.removed !== '').length,
          sft: join(dataDir, 'sft.jsonl'),
          pairs: join(dataDir, 'pairs.jsonl'),
          seconds: (performance.now() - t0) / 1000,
        });
      } finally {
        model.dispose();
      }
    }
    const s = await this.train('sft', (resume) =>
      trainLm(sftOf(join(dataDir, 'sft.jsonl')), this.trainOpts(resume)),
    );
    return s !== undefined;
  }

  /** The SL-CAI model: the SFT stage's checkpoint, or the policy when there was no SL stage. */
  private slModel(): string {
    return (this.done['sft']?.['checkpoint'] as string | undefined) ?? this.c.policy;
  }

  async rl(): Promise<boolean> {
    const rl = this.c.rl!;
    const file = this.o.file ?? '(config object)';
    const dataDir = join(this.dir, 'rl-data');
    const base = this.slModel();
    if (!this.done['rl-data']) {
      const t0 = performance.now();
      const prompts = await promptItems(rl.prompts, rl.columns, rl.limit);
      const sampler = await this.model(
        rl.sampler ?? base,
        rl.sampler ? 'rl.sampler' : 'the SL-CAI model',
      );
      const feedback = await this.model(rl.feedback, 'rl.feedback');
      try {
        this.log(
          `stage rl-data: ${prompts.length} prompts; pairs by ${sampler.describe}; labels by ${feedback.describe}, ${rl.principles} principles each${rl.chainOfThought ? ', chain of thought' : ''}`,
        );
        const labeller = new Labeller(
          feedback,
          this.constitution,
          {
            seed: this.c.seed,
            principles: rl.principles,
            chainOfThought: rl.chainOfThought,
            clamp: rl.clamp,
            votes: rl.votes,
            shots: rl.fewShot,
            reasoningTokens: rl.reasoningTokens,
            temperature: 1,
            shuffleOrder: rl.shuffleOrder,
          },
          (m) => this.log(m),
        );
        const stage = rlStage(
          sampler,
          labeller,
          this.constitution,
          prompts,
          {
            seed: this.c.seed,
            maxTokens: rl.generation.maxNewTokens,
            temperature: rl.generation.temperature,
            topP: rl.generation.topP,
          },
          this.c.batchSize,
        );
        const r = await runDataStage(dataDir, { stage: 'rl-data', ...this.c }, stage, {
          resume: this.resumeOf('rl-data'),
          signal: this.o.signal,
          events: this.o.events,
        });
        if (r.aborted) return false;
        const turnsOf = (x: { prompt: PromptItem['prompt'] }) => promptTurns(x.prompt);
        const rows = rmRows(this.constitution, this.c.dialogue, r.records, turnsOf);
        const extra = rl.extraPairs ? await extraPairs(rl.extraPairs) : '';
        await writeFileAtomic(join(dataDir, 'rm-pairs.jsonl'), jsonl(rows) + extra);
        const ppoPrompts = prompts.map((p) => ({
          prompt:
            this.c.dialogue === 'chat'
              ? p.turns
              : renderText(this.constitution.dialogue, p.turns, true),
        }));
        await writeFileAtomic(join(dataDir, 'prompts.jsonl'), jsonl(ppoPrompts));
        const js = r.records.flatMap((x) => x.judgements ?? []);
        const voted = js.filter((j) => j.source === 'votes').length;
        await this.finish('rl-data', {
          runDir: dataDir,
          pairs: rows.length,
          skippedIdentical: r.records.length - rows.length,
          judgements: js.length,
          labelSource: voted === 0 ? 'logprobs' : voted === js.length ? 'votes' : 'mixed',
          votedJudgements: voted,
          rmPairs: join(dataDir, 'rm-pairs.jsonl'),
          seconds: (performance.now() - t0) / 1000,
        });
      } finally {
        sampler.dispose();
        feedback.dispose();
      }
    }
    const rmSection = rl.rm as { model?: { path?: string } };
    const rm = await this.train('rm', (resume) =>
      trainPreference(
        trainerConfig<RmConfig>(
          'rm',
          rl.rm,
          {
            output: join(this.dir, 'rm'),
            seed: this.c.seed,
            ...(rmSection.model?.path ? {} : { model: { path: base } }),
            data: { train: join(dataDir, 'rm-pairs.jsonl'), format: 'preference' },
          },
          { file, field: 'rl.rm' },
        ),
        this.trainOpts(resume),
      ),
    );
    if (!rm) return false;
    const ppo = await this.train('ppo', (resume) =>
      trainRl(
        trainerConfig<RlConfig>(
          'ppo',
          rl.ppo,
          {
            output: join(this.dir, 'ppo'),
            seed: this.c.seed,
            model: { path: base },
            data: { train: join(dataDir, 'prompts.jsonl') },
            reward: { sources: [{ type: 'model', name: 'cai-rm', path: rm['checkpoint'] }] },
          },
          { file, field: 'rl.ppo' },
        ),
        this.trainOpts(resume),
      ),
    );
    return ppo !== undefined;
  }

  get stages() {
    return this.done;
  }
}

/** Human-labelled pairs mixed into the reward model's data: checked, then copied as they are. */
async function extraPairs(file: string): Promise<string> {
  await loadExamples(file, { format: 'preference' }); // every row checked (file:line on an error)
  const body = await readFile(file, 'utf8');
  return body.endsWith('\n') || body === '' ? body : `${body}\n`;
}

/** Revision rows and helpful rows, shuffled together (seeded). */
function mixRows(
  a: readonly Record<string, unknown>[],
  b: readonly Record<string, unknown>[],
  seed: number,
): Record<string, unknown>[] {
  if (b.length === 0) return [...a];
  return shuffled([...a, ...b], seed);
}

const shuffled = <T>(xs: T[], seed: number) =>
  RandomStream.of({ seed, step: 0, actor: 'cai', purpose: 'sft-mix' }).shuffle(xs);

/** Run the CAI pipeline (the stages the config has, or `o.stages`). */
export async function runCai(config: CaiConfig, o: CaiRunOptions = {}): Promise<CaiResult> {
  const stages = o.stages ?? (['sl', 'rl'] as const).filter((s) => config[s] !== undefined);
  for (const s of stages) {
    if (!config[s]) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${o.file ?? '(config object)'}: stage '${s}' asked for, but the config has no '${s}' section`,
      );
    }
  }
  const p = new Pipeline(config, o);
  await p.open();
  let aborted = false;
  for (const s of stages) {
    const ok = s === 'sl' ? await p.sl() : await p.rl();
    if (!ok) {
      aborted = true;
      p.log(`interrupted in the ${s} stage; --resume continues from there`);
      break;
    }
  }
  if (!aborted) p.log('CAI run done');
  return { runDir: resolve(config.output), aborted, stages: p.stages };
}
