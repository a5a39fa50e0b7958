import { type RoleFactory, roleRef, transfer } from '../../actors/role.js';
import { SharedWeights, type SharedWeightsHandle, unpackWeights } from '../../actors/weights.js';
import { threadBlasThreads, useThreadBlasThreads } from '../../kernels/native.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import { assignWeights } from '../../policy/bf16.js';
import { type GenerateOptions, generate } from '../../policy/generate.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import { type GeneratedRows, layoutOf } from '../../rollout/assemble.js';
import { encodeRollout } from '../../rollout/codec.js';
import { heldModel } from './in-thread.js';
import { frozenModel, type ModelSpec } from './models.js';

/*
 * The generator samples rollouts (OpenRLHF's and veRL's vLLM engine) with the policy's latest
 * published weights. On its own thread it copies them from shared memory: when it starts, when
 * it restarts after a crash (so a restarted generator never serves stale weights), and on each
 * `sync`. Colocated with the policy it samples with the policy's own tensors (in-thread.ts):
 * nothing is copied, and every batch sees the weights of the policy's last publish.
 */

export type GeneratorArgs = (
  | {
      /** The model's shape and start weights (the policy's start). */
      readonly model: ModelSpec;
      /** The policy's published weights; `sync` copies them in. */
      readonly weights: SharedWeightsHandle;
    }
  | {
      /** The actor in this thread whose model it samples with (the policy). */
      readonly sharesWith: string;
    }
) & {
  /**
   * BLAS threads of its thread while it samples, where no other actor computes meanwhile (an
   * on-policy run's only generator: the others wait for its rollout); its thread's own count
   * otherwise (rl/topology.ts samplingThreads).
   */
  readonly samplingThreads?: number;
};

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

/** Copy the policy's weights in when they are newer than `version`; returns the version held. */
function syncFrom(shared: SharedWeights, model: CausalLM, version: number): number {
  const snap = shared.readIfChanged(version);
  if (!snap) return version;
  // fp32 parameters assigned; a bf16 generator's matrices (precision bf16) rounded in place
  assignWeights(model, unpackWeights(shared.manifest, snap.buffer, shared.dtype), 'generator');
  return snap.version;
}

/** The generator's model and its weights' version: `sync` brings in the latest publish. */
interface Weights {
  readonly model: CausalLM;
  /** The version sampling uses now. */
  version(): number;
  sync(): number;
}

async function weightsOf(args: GeneratorArgs, name: string): Promise<Weights> {
  if ('sharesWith' in args) {
    const held = heldModel(args.sharesWith, name);
    return { model: held.model, version: () => held.version, sync: () => held.version };
  }
  const model = await frozenModel(args.model);
  const shared = SharedWeights.attach(args.weights);
  let version = 0;
  return {
    model,
    version: () => version,
    sync: () => {
      version = syncFrom(shared, model, version);
      return version;
    },
  };
}

/** `f` with this thread's BLAS threads set to `threads` (when given and the kernels are loaded). */
async function whileSampling<T>(threads: number | undefined, f: () => Promise<T>): Promise<T> {
  const own = threadBlasThreads();
  if (threads === undefined || own === undefined || own === threads) return f();
  useThreadBlasThreads(threads);
  try {
    return await f();
  } finally {
    useThreadBlasThreads(own);
  }
}

export const createGenerator: RoleFactory<GeneratorRole, GeneratorArgs> = async (args, ctx) => {
  const w = await weightsOf(args, ctx.name);
  const model = w.model;
  // Whatever the policy has published so far: nothing at a run's start, the latest on a restart.
  const version = w.sync();
  // generate() awaits between tokens: a sync must not swap weights mid-batch.
  let busy: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(f: () => Promise<T>): Promise<T> => {
    const run = busy.then(f, f);
    busy = run.catch(() => undefined);
    return run;
  };
  const how = 'sharesWith' in args ? `, sampling with ${args.sharesWith}'s own weights` : '';
  const n = args.samplingThreads;
  if (n !== undefined) ctx.log('info', `${n} BLAS thread${n === 1 ? '' : 's'} while sampling`);
  ctx.log(
    'info',
    version !== 0 ? `generator ready (weights version ${version}${how})` : `generator ready${how}`,
  );
  return {
    generate: (prompts, opts) =>
      exclusive(async () => {
        const rng = opts.sampling ? RandomStream.of(opts.sampling) : undefined;
        const version = w.version();
        const g = await whileSampling(args.samplingThreads, () =>
          generate(model, prompts, { ...opts, rng }),
        );
        const frame = encodeRollout(layoutOf(g as GeneratedRows));
        const out: GeneratedBatch = {
          frame,
          responses: g.responses,
          logprobs: g.logprobs,
          stopped: g.stopped,
          version,
        };
        return transfer(out, [frame]);
      }),
    sync: () => exclusive(async () => w.sync()),
  };
};

export const GENERATOR = roleRef<GeneratorRole, GeneratorArgs>(import.meta.url, 'createGenerator');
