import * as Comlink from 'comlink';
import { TroupeError } from '../../errors.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import type { ModelConfig } from '../../policy/config.js';
import { type GenerateOptions, type Generation, generate } from '../../policy/generate.js';
import { lmLoss } from '../../policy/lm-loss.js';
import type { TokenBatch } from '../../policy/model/batch.js';
import { tokenLogprobs } from '../../policy/score.js';
import { Trainable, type TrainableArgs } from '../../policy/trainable.js';
import { AllReduce, type AllReduceShared } from '../allreduce.js';
import { type RoleFactory, roleRef } from '../role.js';

export interface PolicyArgs extends TrainableArgs {
  /** This replica's place in a data-parallel group (gradients all-reduced every step). */
  readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
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
  /** The model (HF layout) — or the PEFT adapters — plus the optimizer state, into `dir`. */
  saveCheckpoint(dir: string): Promise<void>;
  /** The model with LoRA merged in, as a plain HF directory. */
  saveMerged(dir: string): Promise<void>;
}

class Policy implements PolicyRole {
  constructor(private readonly t: Trainable) {}

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
    return Comlink.transfer(out, [out.buffer]);
  }

  saveCheckpoint(dir: string) {
    return this.t.saveCheckpoint(dir);
  }

  saveMerged(dir: string) {
    return this.t.saveMerged(dir);
  }
}

/** The all-reduce of a data-parallel replica, checked against the model's size. */
export async function replicaReducer(
  args: { readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number } },
  trainableSize: number,
): Promise<AllReduce | undefined> {
  const dp = args.dataParallel;
  if (!dp) return undefined;
  const length = policyReduceLength(trainableSize);
  if (dp.shared.length < length) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `data parallel: the all-reduce group holds ${dp.shared.length} values, this model needs ${length} (trainable parameters + 2 + metrics)`,
    );
  }
  return new AllReduce(dp.shared, dp.rank);
}

/**
 * A trainable model in this thread, all-reducing with its data-parallel peers when it has some.
 * The group is checked against the model's size once the model exists.
 */
export async function createReplica(
  args: TrainableArgs & {
    readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
  },
  actor: string,
): Promise<Trainable> {
  let reducer: AllReduce | undefined;
  const lazy = args.dataParallel ? { sum: (v: Float32Array) => reducer!.sum(v) } : undefined;
  const t = await Trainable.create(args, actor, lazy);
  reducer = await replicaReducer(args, t.trainableSize);
  return t;
}

export const createPolicy: RoleFactory<PolicyRole, PolicyArgs> = async (args, ctx) => {
  const t = await createReplica(args, ctx.name);
  ctx.log(
    'info',
    `policy ready: ${t.model.config.family}, ${t.trainableNames.length} trainable tensors`,
  );
  return new Policy(t);
};

export const POLICY = roleRef<PolicyRole, PolicyArgs>(import.meta.url, 'createPolicy');

/** The all-reduce length a policy needs: its trainable parameters, the loss and the weight. */
export function policyReduceLength(paramCount: number): number {
  return paramCount + 2;
}
