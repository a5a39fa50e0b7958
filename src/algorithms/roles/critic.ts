import * as Comlink from 'comlink';
import type { AllReduceShared } from '../../actors/allreduce.js';
import { type RoleFactory, roleRef } from '../../actors/role.js';
import { createReplica } from '../../actors/roles/policy.js';
import {
  SharedWeights,
  type SharedWeightsHandle,
  unpackWeights,
  weightManifest,
} from '../../actors/weights.js';
import { TroupeError } from '../../errors.js';
import {
  entropyFromLogits,
  type KlEstimatorName,
  klEstimate,
} from '../../kernels/numerics/index.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import * as tf from '../../kernels/tf.js';
import type { ModelConfig } from '../../policy/config.js';
import { type GenerateOptions, generate } from '../../policy/generate.js';
import { loadModel } from '../../policy/io.js';
import { CausalLM } from '../../policy/model/causal-lm.js';
import { paramSpecs } from '../../policy/params.js';
import type { Trainable, TrainableArgs } from '../../policy/trainable.js';
import { type GeneratedRows, layoutOf, type RolloutLayout } from '../../rollout/assemble.js';
import { decodeExperience, decodeRollout, encodeRollout } from '../../rollout/codec.js';
import type { Experience } from '../../rollout/experience.js';
import { type AggMode, aggLoss, entropyBonus, ppoPolicyLoss, valueLoss } from '../losses/ppo.js';

/*
 * The four model actors of online RL (OpenRLHF's actor / critic / reference / vLLM engine):
 *   RL_POLICY     trains the policy with the PPO clipped surrogate; publishes its weights
 *   RL_CRITIC     trains V(s) with the clipped value loss (PPO with GAE only)
 *   RL_REFERENCE  the frozen start policy's log-probs, for the KL
 *   RL_GENERATOR  samples rollouts; pulls the policy's weights from shared memory
 * Rollouts cross as msgpack frames (src/rollout/codec.ts): a `rollout` frame (tokens and masks)
 * to score, `experience` frames to train on.
 */

/** How the model of a scoring role is built: a resolved model path, or a config and seed. */
type ModelSpec = TrainableArgs['model'];

async function modelOf(source: ModelSpec): Promise<CausalLM> {
  return 'source' in source
    ? loadModel(source.source)
    : CausalLM.init(source.config, { seed: source.seed });
}

/**
 * log π(a_t|s_t) of every action of a rollout at sampling temperature τ (logits/τ, as verl), and
 * optionally the entropy of π(·|s_t). The hidden state at position P − 1 + t predicts action t.
 *   → logp: (B, A), entropy: (B, A)
 */
export function actionLogProbs(
  model: CausalLM,
  r: RolloutLayout,
  o: { temperature: number; checkpoint?: boolean; entropy?: boolean },
): { logp: tf.Tensor; entropy?: tf.Tensor } {
  const { batch: B, length: L, actions: A } = r.shape;
  const P = r.promptLength;
  const d = model.config.hidden;
  const targets = new Int32Array(B * A);
  for (let b = 0; b < B; b++) targets.set(r.sequences.subarray(b * L + P, (b + 1) * L), b * A);
  const hidden = model.forward(
    { ids: r.sequences, mask: r.attentionMask, batch: B, length: L },
    { checkpoint: o.checkpoint },
  );
  const h = tf.reshape(tf.slice(hidden, [0, P - 1, 0], [B, A, d]), [B * A, d]);
  // log-softmax(z/τ) of the action tokens, z the (soft-capped) logits
  const logp = tf.reshape(model.tokenLogProbs(h, tf.tensor1d(targets, 'int32'), o.temperature), [
    B,
    A,
  ]);
  if (!o.entropy) return { logp };
  const logits = tf.div(model.headLogits(h), o.temperature);
  return { logp, entropy: tf.reshape(entropyFromLogits(logits), [B, A]) };
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** What one optimiser step of an RL learner reports (weighted means over its micro-batches). */
export interface RlStepMetrics {
  readonly loss: number;
  readonly gradNorm: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** The policy's loss: PPO's clipped surrogate, plus a KL term (GRPO) and an entropy bonus. */
export interface PolicyLossConfig {
  readonly clipLow: number;
  readonly clipHigh: number;
  readonly dualClip?: number;
  readonly aggMode: AggMode;
  /** Entropy bonus coefficient (0: none; the entropy is still measured). */
  readonly entropyCoef: number;
  /** A KL(π‖π_ref) loss term, as GRPO: coef · aggLoss(KL estimate). */
  readonly klLoss?: { readonly coef: number; readonly estimator: KlEstimatorName };
}

export interface RlPolicyArgs extends TrainableArgs {
  /** Sampling temperature: log-probs are of logits/τ. */
  readonly temperature: number;
  readonly loss: PolicyLossConfig;
  readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
}

export interface RlPolicyRole {
  /** Shared memory this policy publishes its weights into (rank 0), for the generator. */
  weightsHandle(): Promise<SharedWeightsHandle>;
  /** Publish the current weights (LoRA merged in); returns the new version. */
  publishWeights(): Promise<number>;
  /** log π_θ and the entropy of every action of a rollout frame, no gradient. */
  actionLogprobs(frame: ArrayBuffer): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  /** One optimiser step on this replica's micro-batches (experience frames). */
  step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics>;
  describe(): Promise<{ params: number; trainable: number; config: ModelConfig }>;
  saveCheckpoint(dir: string): Promise<void>;
  saveMerged(dir: string): Promise<void>;
}

const tokensOf = (e: Experience) => e.actionMask.reduce((n, m) => n + m, 0);

/** The weight of a micro-batch in the step's mean: its tokens (token-mean) or its rows. */
function microWeight(e: Experience, mode: AggMode): number {
  return mode === 'token-mean' ? tokensOf(e) : e.shape.batch;
}

function perAction(e: Experience, x: Float32Array | undefined, field: string): tf.Tensor {
  if (!x) throw new TroupeError('BAD_ARGUMENT', `experience frame has no '${field}'`);
  return tf.tensor2d(x, [e.shape.batch, e.shape.actions]);
}

class RlPolicy implements RlPolicyRole {
  private readonly names: string[];
  private shared: SharedWeights | undefined;

  constructor(
    private readonly t: Trainable,
    private readonly args: RlPolicyArgs,
  ) {
    this.names = paramSpecs(t.model.config).map((s) => s.name);
  }

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
    if (!this.shared)
      this.shared = SharedWeights.create(weightManifest(await this.state()), 'float32');
    return this.shared.handle;
  }

  async publishWeights() {
    await this.weightsHandle();
    return this.shared!.write(await this.state());
  }

  async actionLogprobs(frame: ArrayBuffer) {
    const r = decodeRollout(frame);
    const out = tf.tidy(() => {
      const { logp, entropy } = actionLogProbs(this.t.model, r, {
        temperature: this.args.temperature,
        entropy: true,
      });
      return [logp, entropy!];
    });
    const logp = await read(out[0]);
    const entropy = await read(out[1]);
    return Comlink.transfer({ logp, entropy }, [logp.buffer, entropy.buffer]);
  }

  private lossOf(e: Experience) {
    const c = this.args.loss;
    const mask = tf.tensor2d(e.actionMask, [e.shape.batch, e.shape.actions], 'float32');
    const { logp, entropy } = actionLogProbs(this.t.model, e, {
      temperature: this.args.temperature,
      checkpoint: this.t.gradientCheckpointing,
      entropy: c.entropyCoef > 0,
    });
    const pg = ppoPolicyLoss(
      {
        logp,
        oldLogp: perAction(e, e.actionLogProbs, 'actionLogProbs'),
        advantages: perAction(e, e.advantages, 'advantages'),
        mask,
      },
      { clipLow: c.clipLow, clipHigh: c.clipHigh, dualClip: c.dualClip, aggMode: c.aggMode },
    );
    let loss: tf.Scalar = pg.loss;
    const metrics: Record<string, tf.Tensor> = { ...pg.metrics };
    // Without a coefficient the entropy is not computed here (its full-vocabulary logits would
    // cost a backward); the rollout's entropy (actionLogprobs) is the metric then.
    if (entropy) {
      const eb = entropyBonus({ entropy, mask }, { coef: c.entropyCoef, aggMode: c.aggMode });
      metrics['actor/entropy'] = eb.metrics['actor/entropy'];
      loss = tf.add(loss, eb.loss) as tf.Scalar;
    }
    if (c.klLoss) {
      const kl = klEstimate(c.klLoss.estimator, logp, perAction(e, e.refLogProbs, 'refLogProbs'), {
        clamp: 10,
      });
      const term = aggLoss(kl, mask, c.aggMode);
      metrics['actor/kl_loss'] = term;
      loss = tf.add(loss, tf.mul(term, c.klLoss.coef)) as tf.Scalar;
    }
    return { loss, metrics };
  }

  async step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics> {
    const micro = frames.map((f) => decodeExperience(f));
    const out = await this.t.step(
      micro.map((e) => () => ({
        ...this.lossOf(e),
        weight: microWeight(e, this.args.loss.aggMode),
      })),
      lr,
      step,
    );
    return { loss: out.loss, gradNorm: out.gradNorm, metrics: out.metrics };
  }

  async describe() {
    const model = this.t.model;
    const params = [...model.params.values()].reduce((n, v) => n + v.size, 0);
    return { params, trainable: this.t.trainableSize, config: model.config };
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }

  saveMerged(dir: string) {
    return this.t.saveMerged(dir);
  }
}

export const createRlPolicy: RoleFactory<RlPolicyRole, RlPolicyArgs> = async (args, ctx) => {
  const t = await createReplica(args, ctx.name);
  ctx.log('info', `RL policy ready: ${t.trainableNames.length} trainable tensors`);
  return new RlPolicy(t, args);
};

export const RL_POLICY = roleRef<RlPolicyRole, RlPolicyArgs>(import.meta.url, 'createRlPolicy');

export interface CriticArgs extends TrainableArgs {
  readonly loss: { readonly clip?: number; readonly aggMode: AggMode };
  readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
}

export interface CriticRole {
  /** V(s_t) before each action of a rollout frame, (B, A), no gradient. */
  values(frame: ArrayBuffer): Promise<Float32Array>;
  /** One optimiser step of the clipped value loss on this replica's micro-batches. */
  step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics>;
  saveCheckpoint(dir: string): Promise<void>;
}

/** V(s_t) for each action t: the value head at position P − 1 + t.  → (B, A) */
function actionValues(model: CausalLM, r: RolloutLayout, checkpoint: boolean): tf.Tensor {
  const { batch: B, length: L, actions: A } = r.shape;
  const hidden = model.forward(
    { ids: r.sequences, mask: r.attentionMask, batch: B, length: L },
    { checkpoint },
  );
  const d = model.config.hidden;
  return model.values(tf.slice(hidden, [0, r.promptLength - 1, 0], [B, A, d]));
}

class Critic implements CriticRole {
  constructor(
    private readonly t: Trainable,
    private readonly args: CriticArgs,
  ) {}

  async values(frame: ArrayBuffer) {
    const r = decodeRollout(frame);
    const v = await read(tf.tidy(() => actionValues(this.t.model, r, false)));
    return Comlink.transfer(v, [v.buffer]);
  }

  async step(frames: readonly ArrayBuffer[], lr: number, step: number): Promise<RlStepMetrics> {
    const micro = frames.map((f) => decodeExperience(f));
    const { clip, aggMode } = this.args.loss;
    const out = await this.t.step(
      micro.map((e) => () => {
        const values = actionValues(this.t.model, e, this.t.gradientCheckpointing);
        const { loss, metrics } = valueLoss(
          {
            values,
            oldValues: perAction(e, e.values, 'values'),
            returns: perAction(e, e.returns, 'returns'),
            mask: tf.tensor2d(e.actionMask, [e.shape.batch, e.shape.actions], 'float32'),
          },
          { clip, aggMode },
        );
        return { loss, metrics, weight: microWeight(e, aggMode) };
      }),
      lr,
      step,
    );
    return { loss: out.loss, gradNorm: out.gradNorm, metrics: out.metrics };
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }
}

export const createCritic: RoleFactory<CriticRole, CriticArgs> = async (args, ctx) => {
  const t = await createReplica({ ...args, heads: ['value_head'] }, ctx.name);
  ctx.log('info', `critic ready: ${t.trainableNames.length} trainable tensors`);
  return new Critic(t, args);
};

export const RL_CRITIC = roleRef<CriticRole, CriticArgs>(import.meta.url, 'createCritic');

export interface ReferenceArgs {
  readonly model: ModelSpec;
  readonly temperature: number;
}

export interface ReferenceRole {
  /** log π_ref of every action of a rollout frame.  → (B, A) */
  actionLogprobs(frame: ArrayBuffer): Promise<Float32Array>;
}

export const createReference: RoleFactory<ReferenceRole, ReferenceArgs> = async (args, ctx) => {
  const model = await modelOf(args.model);
  ctx.log('info', 'reference ready');
  return {
    async actionLogprobs(frame) {
      const r = decodeRollout(frame);
      const lp = await read(
        tf.tidy(() => actionLogProbs(model, r, { temperature: args.temperature }).logp),
      );
      return Comlink.transfer(lp, [lp.buffer]);
    },
  };
};

export const RL_REFERENCE = roleRef<ReferenceRole, ReferenceArgs>(
  import.meta.url,
  'createReference',
);

export interface GeneratorArgs {
  readonly model: ModelSpec;
  /** The policy's published weights; `sync` copies them in. */
  readonly weights: SharedWeightsHandle;
}

/** One generated batch: its layout (as a rollout frame) and what the controller reads. */
export interface GeneratedBatch {
  /** A `rollout` frame of the rows (encodeRollout). */
  readonly frame: ArrayBuffer;
  readonly responses: number[][];
  /** log π of each sampled token at generation time (for the train/generate mismatch metric). */
  readonly logprobs: number[][];
  readonly stopped: boolean[];
  /** The weights version the rows were sampled with. */
  readonly version: number;
}

export interface GeneratorRole {
  /** Sample `maxNewTokens` per prompt (each prompt once: repeat it for n samples). */
  generate(
    prompts: number[][],
    opts: Omit<GenerateOptions, 'rng'> & { readonly sampling?: StreamKey },
  ): Promise<GeneratedBatch>;
  /** Copy in the policy's latest published weights; returns their version. */
  sync(): Promise<number>;
}

export const createGenerator: RoleFactory<GeneratorRole, GeneratorArgs> = async (args, ctx) => {
  const model = await modelOf(args.model);
  const shared = SharedWeights.attach(args.weights);
  let version = 0;
  // generate() awaits between tokens: a sync must not swap weights mid-batch.
  let busy: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(f: () => Promise<T>): Promise<T> => {
    const run = busy.then(f, f);
    busy = run.catch(() => undefined);
    return run;
  };
  ctx.log('info', 'generator ready');
  return {
    generate: (prompts, opts) =>
      exclusive(async () => {
        const rng = opts.sampling ? RandomStream.of(opts.sampling) : undefined;
        const g = await generate(model, prompts, { ...opts, rng });
        const frame = encodeRollout(layoutOf(g as GeneratedRows));
        const out: GeneratedBatch = {
          frame,
          responses: g.responses,
          logprobs: g.logprobs,
          stopped: g.stopped,
          version,
        };
        return Comlink.transfer(out, [frame]);
      }),
    sync: () =>
      exclusive(async () => {
        const snap = shared.readIfChanged(version);
        if (!snap) return version;
        const state = unpackWeights(shared.manifest, snap.buffer, shared.dtype);
        for (const [name, { shape, data }] of state) {
          const v = model.params.get(name);
          if (!v)
            throw new TroupeError(
              'BAD_ARGUMENT',
              `generator: the policy sent '${name}', which this model lacks`,
            );
          tf.tidy(() => v.assign(tf.tensor(data, shape as number[])));
        }
        version = snap.version;
        return version;
      }),
  };
};

export const RL_GENERATOR = roleRef<GeneratorRole, GeneratorArgs>(
  import.meta.url,
  'createGenerator',
);
