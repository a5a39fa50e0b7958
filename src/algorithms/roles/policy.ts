import { type RoleFactory, roleRef, transfer } from '../../actors/role.js';
import { SharedWeights, type SharedWeightsHandle, weightManifest } from '../../actors/weights.js';
import type { TokenBatch } from '../../data/batching/collate.js';
import { TroupeError } from '../../errors.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import * as tf from '../../kernels/tf.js';
import type { ModelConfig } from '../../policy/config.js';
import { type GenerateOptions, type Generation, generate } from '../../policy/generate.js';
import { lmLoss } from '../../policy/lm-loss.js';
import { paramSpecs } from '../../policy/params.js';
import { tokenLogprobs } from '../../policy/score.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import { decodeExperience, decodeRollout } from '../../rollout/codec.js';
import type { Experience } from '../../rollout/experience.js';
import { type AggMode, aggLoss, stopGradient } from '../losses/index.js';
import { type PolicyLossConfig, policyObjective } from '../losses/objectives.js';
import { holdModel } from './in-thread.js';
import { actionLogProbs, read } from './logprobs.js';
import { createReplica, type DataParallel } from './models.js';

/*
 * The policy: the model being trained. Language modelling (pretraining, SFT) trains it on
 * token batches; online RL on experience frames with the PPO surrogate, after which it publishes
 * its weights for the generator: into shared memory, or, for a generator colocated with it, by
 * counting a version of the tensors the generator samples with (in-thread.ts). (Past 300 lines:
 * one role, its language-modelling and RL methods over one trainable replica.)
 */

export interface PolicyRlArgs {
  /** The sampling temperature (log-probs are of logits/τ). */
  readonly temperature: number;
  readonly loss: PolicyLossConfig;
  /**
   * A generator colocated with this policy samples with its own tensors: publishing copies
   * nothing (no shared memory is made).
   */
  readonly sharesWeights?: boolean;
  /**
   * Each batch gets exactly one optimiser step, with the weights that sampled it and no dropout
   * (on-policy, one epoch of one minibatch): π_old is then this step's own log π_θ, detached
   * (ratio 1 exactly, as the separate pass gave), so no pass computes it before. The step
   * reports the entropy and the generator/policy mismatch that pass would have.
   */
  readonly oldLogpInStep?: boolean;
  /**
   * π_old is the generator's log-probs, with no pass before the update (rl/topology.ts
   * oldLogpFromGenerator): the step reports the entropy and the generator/policy mismatch.
   */
  readonly oldLogpFromGenerator?: boolean;
  /**
   * The update's forward runs a prompt repeated across rows once (rl/topology.ts
   * sharePrefixInStep: no dropout; and gradient checkpointing off here).
   */
  readonly sharePrefix?: boolean;
}

export interface PolicyArgs extends TrainableArgs {
  /** This replica's place in a data-parallel group (gradients all-reduced every step). */
  readonly dataParallel?: DataParallel;
  /** Online RL: the sampling temperature, the policy's loss, how it publishes. */
  readonly rl?: PolicyRlArgs;
}

/** A training batch as plain arrays (it crosses threads). `lossMask` selects the target tokens. */
export interface TrainBatch extends TokenBatch {
  readonly lossMask?: Uint8Array;
}

export interface StepResult {
  /** Mean loss over every counted token of the global batch (all replicas). */
  readonly loss: number;
  readonly tokens: number;
  /** Global gradient norm before clipping. */
  readonly gradNorm: number;
}

/** What one optimiser step of an RL learner reports (weighted means over its micro-batches). */
export interface RlStepMetrics {
  readonly loss: number;
  readonly gradNorm: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface PolicyRole {
  /** Parameter counts (all, trainable) and the model config. */
  describe(): Promise<{ params: number; trainable: number; config: ModelConfig }>;
  /**
   * One optimiser step on this replica's share of the batch, given as micro-batches (gradient
   * accumulation), all-reduced in a data-parallel group. `step` keys the dropout draws.
   */
  trainStep(micro: readonly TrainBatch[], lr: number, step: number): Promise<StepResult>;
  /** Mean loss (and token count) of a batch, no update. */
  evalLoss(batch: TrainBatch): Promise<{ loss: number; tokens: number }>;
  generate(
    prompts: number[][],
    opts: Omit<GenerateOptions, 'rng'> & { readonly sampling?: StreamKey },
  ): Promise<Generation>;
  logprobs(rows: number[][]): Promise<number[][]>;
  /** Every trainable parameter concatenated in name order (transferred, not copied). */
  flatParams(): Promise<Float32Array>;
  /** RL: shared memory this policy publishes its weights into (rank 0), for the generator. */
  weightsHandle(): Promise<SharedWeightsHandle>;
  /** RL: publish the current weights (LoRA merged in); returns the new version. */
  publishWeights(): Promise<number>;
  /** RL: log π_θ and the entropy of every action of a rollout frame, no gradient. */
  actionLogprobs(frame: ArrayBuffer): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  /** RL: one optimiser step of the policy loss on this replica's micro-batches (experience frames). */
  step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics>;
  /** The model (HF layout) — or the PEFT adapters — plus the optimizer state, into `dir`. */
  saveCheckpoint(dir: string): Promise<void>;
  /** The model with LoRA merged in, as a plain HF directory. */
  saveMerged(dir: string): Promise<void>;
}

const tokensOf = (e: Experience) => e.actionMask.reduce((n, m) => n + m, 0);

/** The weight of a micro-batch in the step's mean: its tokens (token-mean) or its rows. */
export function microWeight(e: Experience, mode: AggMode): number {
  return mode === 'token-mean' ? tokensOf(e) : e.shape.batch;
}

/** A per-action field of an experience as a (B, A) tensor; refused by name when absent. */
export function perAction(e: Experience, x: Float32Array | undefined, field: string): tf.Tensor {
  if (!x) throw new TroupeError('BAD_ARGUMENT', `experience frame has no '${field}'`);
  return tf.tensor2d(x, [e.shape.batch, e.shape.actions]);
}

class Policy implements PolicyRole {
  private readonly names: string[];
  private shared: SharedWeights | undefined;
  /** With a colocated generator: the in-thread handle it samples through. */
  private readonly held: { publish(): number } | undefined;

  constructor(
    private readonly t: Trainable,
    private readonly args: PolicyArgs,
    name: string,
  ) {
    this.names = paramSpecs(t.model.config).map((s) => s.name);
    this.held = args.rl?.sharesWeights ? holdModel(name, t.model) : undefined;
  }

  async describe() {
    const model = this.t.model;
    const params = [...model.params.values()].reduce((n, v) => n + v.size, 0);
    return { params, trainable: this.t.trainableSize, config: model.config };
  }

  async trainStep(micro: readonly TrainBatch[], lr: number, step: number): Promise<StepResult> {
    const out = await this.t.step(
      micro.map((batch) => () => {
        const { loss, tokens } = lmLoss(this.t.model, batch, {
          lossMask: batch.lossMask,
          checkpoint: this.t.gradientCheckpointing,
        });
        return { loss, weight: tokens };
      }),
      lr,
      step,
    );
    return { loss: out.loss, tokens: out.weight, gradNorm: out.gradNorm };
  }

  async evalLoss(batch: TrainBatch) {
    const { loss, tokens } = lmLoss(this.t.model, batch, { lossMask: batch.lossMask });
    try {
      return { loss: (await loss.data())[0], tokens };
    } finally {
      loss.dispose();
    }
  }

  async generate(
    prompts: number[][],
    opts: Omit<GenerateOptions, 'rng'> & { readonly sampling?: StreamKey },
  ) {
    const rng = opts.sampling ? RandomStream.of(opts.sampling) : undefined;
    return generate(this.t.model, prompts, { ...opts, rng });
  }

  async logprobs(rows: number[][]) {
    return tokenLogprobs(this.t.model, rows);
  }

  async flatParams(): Promise<Float32Array> {
    const out = await this.t.flatParams();
    return transfer(out, [out]);
  }

  /** The weights as the generator takes them: every base parameter, LoRA merged in. */
  private async state() {
    const lora = this.t.lora;
    if (lora) lora.merge();
    try {
      const state = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const n of this.names) {
        const v = this.t.model.params.get(n)!;
        state.set(n, { shape: v.shape, data: (await v.data()) as Float32Array });
      }
      return state;
    } finally {
      if (lora) lora.unmerge();
    }
  }

  async weightsHandle() {
    if (this.held) {
      throw new TroupeError(
        'BAD_TOPOLOGY',
        'policy: its generator is colocated and samples with its own tensors (rl.sharesWeights), so it publishes no shared memory',
      );
    }
    if (!this.shared)
      this.shared = SharedWeights.create(weightManifest(await this.state()), 'float32');
    return this.shared.handle;
  }

  async publishWeights() {
    if (this.held) return this.held.publish();
    await this.weightsHandle();
    return this.shared!.write(await this.state());
  }

  private rl() {
    if (!this.args.rl) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        'policy: this policy was started without `rl` arguments (temperature, loss), so it cannot take RL steps',
      );
    }
    return this.args.rl;
  }

  async actionLogprobs(frame: ArrayBuffer) {
    const r = decodeRollout(frame);
    const { temperature } = this.rl();
    const out = tf.tidy(() => {
      const { logp, entropy } = actionLogProbs(this.t.model, r, {
        temperature,
        entropy: true,
        sharePrefix: true,
      });
      return [logp, entropy!];
    });
    const logp = await read(out[0]);
    const entropy = await read(out[1]);
    return transfer({ logp, entropy }, [logp, entropy]);
  }

  /** One micro-batch's loss: the model's log-probs (and entropy) into the policy objective. */
  private lossOf(e: Experience) {
    const { temperature, loss: c, oldLogpInStep, oldLogpFromGenerator, sharePrefix } = this.rl();
    // No pass of this policy scored the rollout: the step reports what that pass would have.
    const noPass = oldLogpInStep || oldLogpFromGenerator;
    const mask = tf.tensor2d(e.actionMask, [e.shape.batch, e.shape.actions], 'float32');
    const { logp, entropy } = actionLogProbs(this.t.model, e, {
      temperature,
      checkpoint: this.t.gradientCheckpointing,
      entropy: c.entropyCoef > 0 ? true : noPass ? 'metric' : false,
      sharePrefix: sharePrefix && !this.t.gradientCheckpointing,
    });
    // Without a coefficient the entropy is not in the loss; the rollout's entropy
    // (actionLogprobs) is the metric then, or, with no such pass (oldLogpInStep, GRPO's
    // default; oldLogpFromGenerator), this forward's: from the same logits as the log-probs,
    // with no gradient.
    const sampled = perAction(e, e.actionLogProbs, 'actionLogProbs');
    const out = policyObjective(
      {
        logp,
        oldLogp: oldLogpInStep ? stopGradient(logp) : sampled,
        advantages: perAction(e, e.advantages, 'advantages'),
        mask,
        entropy: c.entropyCoef > 0 ? entropy : undefined,
        refLogp: c.klLoss ? perAction(e, e.refLogProbs, 'refLogProbs') : undefined,
      },
      c,
    );
    if (!noPass) return out;
    // The experience's log-probs are the generator's: the mismatch the pass used to measure
    // (with several steps a batch, oldLogpFromGenerator's later steps add the policy's drift).
    const metrics: Record<string, tf.Scalar> = {
      'rollout/logprob_diff': aggLoss(tf.abs(tf.sub(logp, sampled)), mask, 'token-mean'),
      ...out.metrics,
    };
    if (c.entropyCoef === 0) metrics['actor/entropy'] = aggLoss(entropy!, mask, 'token-mean');
    return { loss: out.loss, metrics };
  }

  async step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics> {
    const micro = frames.map((f) => decodeExperience(f));
    const { aggMode } = this.rl().loss;
    const out = await this.t.step(
      micro.map((e) => () => ({ ...this.lossOf(e), weight: microWeight(e, aggMode) })),
      lr,
      step,
    );
    return { loss: out.loss, gradNorm: out.gradNorm, metrics: out.metrics };
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }

  saveMerged(dir: string) {
    return this.t.saveMerged(dir);
  }
}

export const createPolicy: RoleFactory<PolicyRole, PolicyArgs> = async (args, ctx) => {
  const t = await createReplica(args, ctx.name);
  ctx.log(
    'info',
    args.rl
      ? `RL policy ready: ${t.trainableNames.length} trainable tensors`
      : `policy ready: ${t.model.config.family}, ${t.trainableNames.length} trainable tensors`,
  );
  return new Policy(t, args, ctx.name);
};

export const POLICY = roleRef<PolicyRole, PolicyArgs>(import.meta.url, 'createPolicy');
