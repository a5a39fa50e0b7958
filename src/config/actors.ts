import { z } from 'zod';
import { lookup, TroupeError } from '../errors.js';
import { BACKEND_CHOICES } from '../kernels/backends/types.js';
import { parseDevice } from '../kernels/device.js';
import { PRECISIONS, precisionRefusal } from '../kernels/precision.js';

/*
 * The `actors` section: where each actor of a run runs. Keys are the actor names of the
 * algorithm's topology (src/algorithms: LM_TOPOLOGY, RM_TOPOLOGY, DPO_TOPOLOGY, RL_TOPOLOGY),
 * the names its logs and metrics use; every field is optional, and unset ones keep what a run did
 * before the section existed (see `resolvePlacement` in src/algorithms/launch.ts).
 */

/** What config validation knows of an actor: whether it trains, and its default replicas. */
export interface ActorEntry {
  /** Trains its model: may run as data-parallel replicas (`replicas`). */
  readonly trainable: boolean;
  /** Its replicas default to `runtime.replicas` (the algorithm's main learner); else 1. */
  readonly replicasFromRuntime?: boolean;
}

const LEARNER: ActorEntry = { trainable: true, replicasFromRuntime: true };
const FROZEN: ActorEntry = { trainable: false };
const RL: Readonly<Record<string, ActorEntry>> = {
  policy: LEARNER,
  generator: FROZEN,
  reward: FROZEN,
  reference: FROZEN,
  critic: { trainable: true },
};

/**
 * The actors each algorithm can run, by name. The algorithm's topology declares the same names
 * (its type says so) and says what each plays, when the run has it and what it needs.
 */
export const ALGORITHM_ACTORS = {
  pretrain: { policy: LEARNER },
  sft: { policy: LEARNER },
  rm: { rm: LEARNER },
  dpo: { dpo: LEARNER, reference: FROZEN },
  ppo: RL,
  grpo: RL,
  rloo: RL,
  reinforce: RL,
} as const satisfies Readonly<Record<string, Readonly<Record<string, ActorEntry>>>>;

export type ActorAlgorithm = keyof typeof ALGORITHM_ACTORS;

/** Every algorithm's actors: the built-ins, and those `registerAlgorithm` adds. */
const TABLES = new Map<string, Readonly<Record<string, ActorEntry>>>(
  Object.entries(ALGORITHM_ACTORS),
);

/** The actors of `algorithm` (UNKNOWN_NAME listing the algorithms if it has none). */
export function actorsOf(algorithm: string): Readonly<Record<string, ActorEntry>> {
  return lookup(TABLES, algorithm, 'algorithm');
}

/** Declare the actors of an algorithm registered at run time (src/algorithms/registry.ts). */
export function registerActors(
  algorithm: string,
  actors: Readonly<Record<string, ActorEntry>>,
): void {
  const learners = Object.keys(actors).filter((n) => actors[n].replicasFromRuntime);
  if (learners.length !== 1) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Algorithm '${algorithm}': exactly one actor takes runtime.replicas (replicasFromRuntime); got ${learners.length > 0 ? learners.join(', ') : 'none'}`,
    );
  }
  TABLES.set(algorithm, actors);
}

/** The actor whose replicas are `runtime.replicas` by default: the one the batch is split over. */
export function mainLearner(algorithm: string): string {
  const actors = actorsOf(algorithm);
  return Object.keys(actors).find((n) => actors[n].replicasFromRuntime)!;
}

/** One actor's placement, every field optional. */
export const placementSchema = z
  .object({
    /** Its thread's backend; default `runtime.backend` (the reward actor: `cpu`). */
    backend: z.enum(BACKEND_CHOICES).optional(),
    /** Its device (`cpu`, `gpu`, `gpu:N`); default `runtime.device` (the reward actor: its backend's). */
    device: z.string().optional(),
    /** BLAS threads per call of its thread; default the cores shared out (`runtime.blasThreads`). */
    blasThreads: z.number().int().positive().optional(),
    /** Its thread's matrix-product precision (fp32 or bf16); default `runtime.precision`. */
    precision: z.enum(PRECISIONS, { error: (i) => precisionRefusal(i.input) }).optional(),
    /** Share this other actor's thread, runtime and device (and its backend and BLAS threads). */
    colocateWith: z.string().optional(),
    /** Data-parallel replicas, one thread each (trainable actors); default `runtime.replicas` for the main learner, else 1. A colocated actor runs one instance beside each of its host's replicas. */
    replicas: z.number().int().positive().optional(),
  })
  .strict();

export type ActorPlacementConfig = z.infer<typeof placementSchema>;

/**
 * The `actors` section of `algorithm`: its actor names as keys, each checked as far as config
 * can. `table`: its actors, for an algorithm not registered yet (default: those registered).
 */
export function actorsSchema(
  algorithm: string,
  table: Readonly<Record<string, ActorEntry>> = actorsOf(algorithm),
) {
  const names = Object.keys(table);
  const shape = Object.fromEntries(names.map((n) => [n, placementSchema.optional()]));
  return z
    .object(shape)
    .strict()
    .superRefine((actors, ctx) => {
      for (const [name, p] of Object.entries(actors) as [string, ActorPlacementConfig][]) {
        if (!p) continue;
        const at = (field: string, message: string) =>
          ctx.addIssue({ code: 'custom', path: [name, field], message });
        if (p.replicas !== undefined && !table[name].trainable) {
          const trainers = names.filter((n) => table[n].trainable).join(', ');
          at(
            'replicas',
            `only trainable actors (${trainers}) run as data-parallel replicas; '${name}' is one actor`,
          );
        }
        if (p.device !== undefined) {
          try {
            parseDevice(p.device);
          } catch (e) {
            at('device', (e as Error).message);
          }
        }
        if (p.colocateWith === undefined) continue;
        if (p.colocateWith === name) at('colocateWith', 'an actor cannot colocate with itself');
        else if (!table[p.colocateWith]) {
          at(
            'colocateWith',
            `'${p.colocateWith}' is not an actor of ${algorithm} (its actors: ${names.join(', ')})`,
          );
        }
      }
    })
    .optional();
}
