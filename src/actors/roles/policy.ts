import * as Comlink from 'comlink';
import { TroupeError } from '../../errors.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import type { ModelConfig } from '../../policy/config.js';
import { type GenerateOptions, type Generation, generate } from '../../policy/generate.js';
import { loadModel, loadOptimizer, saveModel, saveOptimizer } from '../../policy/io.js';
import { lmLoss } from '../../policy/lm-loss.js';
import { Lora, type LoraConfig } from '../../policy/lora.js';
import type { TokenBatch } from '../../policy/model/batch.js';
import { CausalLM } from '../../policy/model/causal-lm.js';
import { AdamW, type AdamWOptions } from '../../policy/optim/index.js';
import { loadLoraAdapter, saveLoraAdapter } from '../../policy/peft.js';
import { tokenLogprobs } from '../../policy/score.js';
import { optimizerStep } from '../../policy/train-step.js';
import { AllReduce, type AllReduceShared } from '../allreduce.js';
import { type RoleFactory, roleRef } from '../role.js';

export interface PolicyArgs {
  /** A fresh model from a config and seed, or a saved Hugging Face directory. */
  readonly model:
    | { readonly config: ModelConfig; readonly seed: number }
    | { readonly dir: string };
  readonly optimizer?: AdamWOptions;
  /** Global gradient-norm clip; 0 = off. Default 1. */
  readonly maxGradNorm?: number;
  /** Recompute blocks in backward. */
  readonly gradientCheckpointing?: boolean;
  /** Train LoRA adapters only (the base stays frozen). */
  readonly lora?: LoraConfig & { readonly seed: number };
  /**
   * Continue from a checkpoint written by `saveCheckpoint`: its weights (or adapters) and
   * optimizer state replace the initial ones.
   */
  readonly resumeFrom?: string;
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
  private readonly trainable: string[];
  private readonly allReduce: AllReduce | undefined;

  constructor(
    private readonly model: CausalLM,
    private readonly opt: AdamW,
    private readonly lora: Lora | undefined,
    private readonly args: PolicyArgs,
    private readonly actor: string,
  ) {
    this.trainable = lora ? lora.trainableNames : [...model.params.keys()];
    const dp = args.dataParallel;
    if (dp) {
      const length = policyReduceLength(
        this.trainable.reduce((n, k) => n + model.params.get(k)!.size, 0),
      );
      if (dp.shared.length !== length) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `data parallel: the all-reduce group holds ${dp.shared.length} values, this model needs ${length} (trainable parameters + 2)`,
        );
      }
      this.allReduce = new AllReduce(dp.shared, dp.rank);
    }
  }

  async describe() {
    const size = (names: Iterable<string>) =>
      [...names].reduce((n, k) => n + this.model.params.get(k)!.size, 0);
    return {
      params: size(this.model.params.keys()),
      trainable: size(this.trainable),
      config: this.model.config,
    };
  }

  async trainStep(micro: readonly TrainBatch[], lr: number, step: number): Promise<StepResult> {
    if (this.lora) this.lora.dropoutKey = { seed: this.args.lora!.seed, step, actor: this.actor };
    try {
      const out = await optimizerStep(
        this.model,
        this.opt,
        micro.map((batch) => () => {
          const { loss, tokens } = lmLoss(this.model, batch, {
            lossMask: batch.lossMask,
            checkpoint: this.args.gradientCheckpointing,
          });
          return { loss, weight: tokens };
        }),
        {
          lr,
          maxGradNorm: this.args.maxGradNorm ?? 1,
          reducer: this.allReduce,
          trainable: this.trainable,
        },
      );
      return { loss: out.loss, tokens: out.weight, gradNorm: out.gradNorm };
    } finally {
      if (this.lora) this.lora.dropoutKey = undefined;
    }
  }

  async evalLoss(batch: TrainBatch) {
    const { loss, tokens } = lmLoss(this.model, batch, { lossMask: batch.lossMask });
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
    return generate(this.model, prompts, { ...opts, rng });
  }

  async logprobs(rows: number[][]) {
    return tokenLogprobs(this.model, rows);
  }

  async flatParams(): Promise<Float32Array> {
    const total = this.trainable.reduce((n, k) => n + this.model.params.get(k)!.size, 0);
    const out = new Float32Array(total);
    let off = 0;
    for (const n of this.trainable) {
      const data = await this.model.params.get(n)!.data();
      out.set(data, off);
      off += data.length;
    }
    return Comlink.transfer(out, [out.buffer]);
  }

  async saveCheckpoint(dir: string) {
    if (this.lora) await saveLoraAdapter(dir, this.lora);
    else await saveModel(dir, this.model);
    await saveOptimizer(dir, this.opt);
  }

  async saveMerged(dir: string) {
    if (this.lora) this.lora.merge();
    try {
      await saveModel(dir, this.model);
    } finally {
      if (this.lora) this.lora.unmerge();
    }
  }
}

export const createPolicy: RoleFactory<PolicyRole, PolicyArgs> = async (args, ctx) => {
  const fromFull = args.resumeFrom && !args.lora ? args.resumeFrom : undefined;
  const source = fromFull ? { dir: fromFull } : args.model;
  const model =
    'dir' in source
      ? await loadModel(source.dir)
      : CausalLM.init(source.config, { seed: source.seed });
  let lora: Lora | undefined;
  if (args.lora) {
    lora = args.resumeFrom
      ? await loadLoraAdapter(model, args.resumeFrom)
      : new Lora(model, args.lora, { seed: args.lora.seed });
  }
  const trainable = new Set(lora ? lora.trainableNames : model.params.keys());
  const opt = new AdamW(model.params, model.specs, {
    ...args.optimizer,
    trainable: (n) => trainable.has(n),
  });
  if (args.resumeFrom) await loadOptimizer(args.resumeFrom, opt);
  ctx.log('info', `policy ready: ${model.config.family}, ${trainable.size} trainable tensors`, {
    resumedFrom: args.resumeFrom ?? null,
  });
  return new Policy(model, opt, lora, args, ctx.name);
};

export const POLICY = roleRef<PolicyRole, PolicyArgs>(import.meta.url, 'createPolicy');

/** The all-reduce length a policy needs: its trainable parameters, the loss and the weight. */
export function policyReduceLength(paramCount: number): number {
  return paramCount + 2;
}
