import { AllReduce, type AllReduceShared } from '../../actors/allreduce.js';
import { TroupeError } from '../../errors.js';
import { loadFrozen } from '../../policy/bf16.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';
import { Trainable, type TrainableArgs } from '../../policy/trainable.js';

/*
 * How a role gets its model: a trainable replica (model, optimizer, adapters, and its
 * data-parallel all-reduce when it has peers) or a frozen copy (the generator, the reference).
 */

/** A replica's place in a data-parallel group (gradients all-reduced every step). */
export interface DataParallel {
  readonly shared: AllReduceShared;
  readonly rank: number;
}

/** How the model of a frozen role is built: a resolved model path, or a config and seed. */
export type ModelSpec = TrainableArgs['model'];

/**
 * A frozen model (no optimizer): fresh from a config and seed, or loaded from its source; under
 * precision bf16 its matrices held as bf16, each rounded as it is read (policy/bf16.ts
 * `loadFrozen`: the fp32 model is never on the backend whole).
 */
export function frozenModel(spec: ModelSpec): Promise<CausalLM> {
  return loadFrozen(spec);
}

/** The all-reduce length a policy needs: its trainable parameters, the loss and the weight. */
export function policyReduceLength(paramCount: number): number {
  return paramCount + 2;
}

/** The all-reduce of a data-parallel replica, checked against the model's size. */
export async function replicaReducer(
  args: { readonly dataParallel?: DataParallel },
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
  args: TrainableArgs & { readonly dataParallel?: DataParallel },
  actor: string,
): Promise<Trainable> {
  let reducer: AllReduce | undefined;
  const lazy = args.dataParallel ? { sum: (v: Float32Array) => reducer!.sum(v) } : undefined;
  const t = await Trainable.create(args, actor, lazy);
  reducer = await replicaReducer(args, t.trainableSize);
  return t;
}
