import type { Actor } from '../../actors/supervisor.js';
import type { RlConfig } from '../../config/schema.js';
import type { DataLoader, LoaderPosition, PromptItem } from '../../data/batching/index.js';
import { promptsDroppedError } from '../../data/batching/length.js';
import { splitOrigin } from '../../data/split.js';
import type { BpeTokenizer } from '../../data/tokenizer/index.js';
import { TroupeError } from '../../errors.js';
import type { PromptRow } from '../../rollout/maker.js';
import type { GeneratedBatch, GeneratorRole } from '../roles/generator.js';
import { trainLoader } from '../step-loop.js';
import { loadPending, savePending } from './pending.js';
import { generateSpread } from './spread.js';
import { sharesWeights } from './topology.js';

/*
 * Where an RL run's rollouts come from: prompts from the loader, sampled by the generator with
 * the policy's latest published weights, one batch ahead with `rollout.offPolicy` (veRL's
 * one-step-off-policy recipe: batch k + 1 samples while batch k trains). It owns what a
 * checkpoint must keep of that: the loader position and the batch sampled ahead.
 */

export type Prompt = PromptRow & { readonly ids: number[] };

/** Prompts of 1…maxLength tokens; a split that keeps none is refused naming its file and why. */
export function toPrompts(
  c: RlConfig,
  tok: BpeTokenizer,
  items: readonly PromptItem[],
  split: 'train' | 'eval',
): Prompt[] {
  const kept = items.filter((it) => it.ids.length > 0 && it.ids.length <= c.data.maxLength);
  if (items.length > 0 && kept.length === 0) {
    const lengths = items.map((it) => it.ids.length);
    throw promptsDroppedError(splitOrigin(c.data, split), lengths, c.data.maxLength);
  }
  return kept.map((it) => ({
    ids: it.ids,
    text: typeof it.prompt === 'string' ? it.prompt : tok.decode(it.ids),
    columns: it.extra,
  }));
}

/** One training batch of rollouts: its prompts, the generated rows, whose weights sampled them. */
export interface RolloutBatch {
  readonly prompts: readonly Prompt[];
  readonly generated: GeneratedBatch;
  /** `rollout/weights_version`: the policy step whose weights sampled the batch. */
  readonly weightsStep: number;
}

/** Told when the policy publishes new weights (the learners tell the rollouts). */
export interface WeightsSubscriber {
  /**
   * The policy published weights `version` after step `step`; resolves when the next batch
   * can sample with them (on-policy) or at once (off-policy: synced before the next batch).
   */
  published(version: number, step: number): Promise<void>;
}

export interface RolloutsOptions {
  readonly c: RlConfig;
  /** The generator's instances (one beside each policy replica when colocated with them). */
  readonly generators: readonly Actor<GeneratorRole>[];
  readonly train: readonly Prompt[];
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number;
  /** Where a resumed run's loader stood. */
  readonly position?: LoaderPosition;
  /** A resumed run's checkpoint directory (its batch sampled ahead, with `offPolicy`). */
  readonly resumedDir?: string;
}

export class Rollouts implements WeightsSubscriber {
  private readonly loader: DataLoader<Prompt, Prompt[]>;
  private readonly steps = new WeightsSteps();
  private pending: { prompts: Prompt[]; gen: Promise<GeneratedBatch> } | undefined;
  private syncing: Promise<unknown> = Promise.resolve();
  private savedPosition: LoaderPosition;

  private constructor(private readonly o: RolloutsOptions) {
    this.loader = trainLoader(o.c, o.train, (xs: Prompt[]) => xs, o.position);
    this.savedPosition = this.loader.position;
  }

  /** The run's rollouts; a resumed off-policy run's first batch is the one its checkpoint kept. */
  static async open(o: RolloutsOptions): Promise<Rollouts> {
    const r = new Rollouts(o);
    const restored =
      o.resumedDir && o.c.rollout.offPolicy ? await loadPending(o.resumedDir, -1) : undefined;
    if (restored) {
      r.steps.published(-1, restored.weightsStep); // -1: never a published (even) version
      r.pending = { prompts: r.nextPrompts(), gen: Promise.resolve(restored.batch) };
    }
    return r;
  }

  private nextPrompts(): Prompt[] {
    return this.loader.next().value as Prompt[];
  }

  /**
   * The generator's rows for `prompts` × n samples (once each, greedy, for `greedy`). A generator
   * that crashed is restarted by the supervisor and syncs the latest weights as it starts; the
   * call is retried there.
   */
  sample(prompts: readonly Prompt[], step: number, greedy = false): Promise<GeneratedBatch> {
    const { c, eosTokenId: eos } = this.o;
    const n = greedy ? 1 : c.rollout.samplesPerPrompt;
    return generateSpread(
      this.o.generators,
      prompts.map((p) => p.ids),
      n,
      {
        maxNewTokens: c.rollout.maxNewTokens,
        temperature: greedy ? 0 : c.rollout.temperature,
        topK: greedy ? 0 : c.rollout.topK,
        topP: greedy ? 1 : c.rollout.topP,
        stopTokenIds: eos === undefined ? [] : [eos],
        padTokenId: this.o.padTokenId,
        sampling: greedy
          ? undefined
          : { seed: c.seed, step, actor: 'generator', purpose: 'sample' },
      },
    );
  }

  /** The batch step `step` trains on; off-policy, the next one starts sampling now. */
  async next(step: number): Promise<RolloutBatch> {
    await this.syncing;
    let prompts: Prompt[];
    let generated: GeneratedBatch;
    if (this.pending) {
      prompts = this.pending.prompts;
      generated = await this.pending.gen;
      this.pending = undefined;
    } else {
      prompts = this.nextPrompts();
      generated = await this.sample(prompts, step);
    }
    this.savedPosition = this.loader.position;
    if (this.o.c.rollout.offPolicy && step + 1 < this.o.c.train.steps) {
      const next = this.nextPrompts();
      this.pending = { prompts: next, gen: this.sample(next, step + 1) };
    }
    return { prompts, generated, weightsStep: this.steps.of(generated.version) };
  }

  published(version: number, step: number): Promise<void> {
    this.steps.published(version, step);
    // Sampling with the policy's own tensors, the generator reads their version itself.
    if (sharesWeights(this.o.c)) return Promise.resolve();
    // Not colocated with the policy, the generator is one instance.
    const sync = this.o.generators[0].call.sync();
    this.syncing = sync;
    return this.o.c.rollout.offPolicy ? Promise.resolve() : sync.then(() => undefined);
  }

  /** Resolves once the generator holds the latest published weights. */
  async synced(): Promise<void> {
    await this.syncing;
  }

  /** Where the loader stands after the batches handed out (a checkpoint's position). */
  get position(): LoaderPosition {
    return this.savedPosition;
  }

  /** Into a checkpoint directory: the batch sampled ahead, if any (see pending.ts). */
  async saveInto(dir: string): Promise<void> {
    const ahead = this.pending && (await this.pending.gen);
    if (ahead) await savePending(dir, { batch: ahead, weightsStep: this.steps.of(ahead.version) });
  }

  /** Wait for a batch still sampling (the run is over: its result is not wanted). */
  async drain(): Promise<void> {
    await this.pending?.gen.catch(() => undefined);
  }
}

/**
 * `rollout/weights_version`: the policy step whose weights sampled a batch (0: the start weights;
 * one behind the step on-policy, two with `offPolicy`), so it continues across a resume. The
 * version the generator reports is the shared-memory write count of this process, from 0 again
 * after a resume; this maps it to steps (the last few publishes are all a batch can be from).
 */
class WeightsSteps {
  private readonly steps = new Map<number, number>();

  published(version: number, step: number): void {
    this.steps.set(version, step);
    if (this.steps.size > 4) this.steps.delete(this.steps.keys().next().value!);
  }

  of(version: number): number {
    const step = this.steps.get(version);
    if (step === undefined) {
      throw new TroupeError(
        'UNSUPPORTED',
        `rl: the generator sampled with weights version ${version}, which this run did not publish`,
      );
    }
    return step;
  }
}
