import * as Comlink from 'comlink';
import { TroupeError } from '../../errors.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import type { ModelConfig } from '../../policy/config.js';
import { type GenerateOptions, type Generation, generate } from '../../policy/generate.js';
import { loadModel, saveModel } from '../../policy/io.js';
import { lmLoss } from '../../policy/lm-loss.js';
import type { TokenBatch } from '../../policy/model/batch.js';
import { CausalLM } from '../../policy/model/causal-lm.js';
import { AdamW, type AdamWOptions } from '../../policy/optim/index.js';
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
  /** Parameter count and the model config. */
  describe(): Promise<{ params: number; config: ModelConfig }>;
  /** One optimiser step on this replica's share of the batch (all-reduced in a DP group). */
  trainStep(batch: TrainBatch, lr: number): Promise<StepResult>;
  generate(
    prompts: number[][],
    opts: Omit<GenerateOptions, 'rng'> & { readonly sampling?: StreamKey },
  ): Promise<Generation>;
  logprobs(rows: number[][]): Promise<number[][]>;
  /** Every parameter concatenated in name order (transferred, not copied). */
  flatParams(): Promise<Float32Array>;
  save(dir: string): Promise<void>;
}

class Policy implements PolicyRole {
  private readonly names: string[];
  private readonly allReduce: AllReduce | undefined;

  constructor(
    private readonly model: CausalLM,
    private readonly opt: AdamW,
    private readonly args: PolicyArgs,
  ) {
    this.names = [...model.params.keys()];
    const dp = args.dataParallel;
    if (dp) {
      const length = policyReduceLength(
        this.names.reduce((n, k) => n + model.params.get(k)!.size, 0),
      );
      if (dp.shared.length !== length) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `data parallel: the all-reduce group holds ${dp.shared.length} values, this model needs ${length} (parameters + 2)`,
        );
      }
      this.allReduce = new AllReduce(dp.shared, dp.rank);
    }
  }

  async describe() {
    return {
      params: [...this.model.params.values()].reduce((n, v) => n + v.size, 0),
      config: this.model.config,
    };
  }

  async trainStep(batch: TrainBatch, lr: number): Promise<StepResult> {
    const out = await optimizerStep(
      this.model,
      this.opt,
      [
        () => {
          const { loss, tokens } = lmLoss(this.model, batch, {
            lossMask: batch.lossMask,
            checkpoint: this.args.gradientCheckpointing,
          });
          return { loss, weight: tokens };
        },
      ],
      { lr, maxGradNorm: this.args.maxGradNorm ?? 1, reducer: this.allReduce },
    );
    return { loss: out.loss, tokens: out.weight, gradNorm: out.gradNorm };
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
    const state = await this.model.stateDict();
    const total = this.names.reduce((n, k) => n + state.get(k)!.data.length, 0);
    const out = new Float32Array(total);
    let off = 0;
    for (const n of this.names) {
      out.set(state.get(n)!.data, off);
      off += state.get(n)!.data.length;
    }
    return Comlink.transfer(out, [out.buffer]);
  }

  async save(dir: string) {
    await saveModel(dir, this.model);
  }
}

export const createPolicy: RoleFactory<PolicyRole, PolicyArgs> = async (args) => {
  const model =
    'dir' in args.model
      ? await loadModel(args.model.dir)
      : CausalLM.init(args.model.config, { seed: args.model.seed });
  return new Policy(model, new AdamW(model.params, model.specs, args.optimizer ?? {}), args);
};

export const POLICY = roleRef<PolicyRole, PolicyArgs>(import.meta.url, 'createPolicy');

/** The all-reduce length a policy of this size needs (parameters + loss sum + token count). */
export function policyReduceLength(paramCount: number): number {
  return paramCount + 2;
}
