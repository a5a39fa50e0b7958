import type { z } from 'zod';
import { type ActorEntry, ALGORITHM_ACTORS, registerActors } from '../config/actors.js';
import {
  dpoConfigSchema,
  grpoConfigSchema,
  ppoConfigSchema,
  pretrainConfigSchema,
  reinforceConfigSchema,
  rlooConfigSchema,
  rmConfigSchema,
  sftConfigSchema,
} from '../config/schema.js';
import { lookup, TroupeError } from '../errors.js';
import type { CastMember } from './launch.js';
import { LM_TOPOLOGY, type TrainOptions, type TrainResult, trainLm } from './lm.js';
import { POLICY_LOSSES } from './losses/ppo.js';
import { PREFERENCE_LOSSES } from './losses/preference.js';
import { REWARD_MODEL_LOSSES } from './losses/reward-model.js';
import { DPO_TOPOLOGY, RM_TOPOLOGY, trainPreference } from './preference.js';
import { RL_TOPOLOGY, trainRl } from './rl.js';

/*
 * The ALGORITHMS registry: every algorithm Troupe trains, by the name its config's `algorithm`
 * and its `troupe` command take. It is the one list: the config loader validates with an entry's
 * schema, `troupe --help` lists the entries and runs their trainers, `troupe config show` places
 * their topologies, and docs/algorithms.md (with README's tables) is generated from it
 * (scripts/docs-algorithms.ts). A new algorithm is its file in src/algorithms (topology and
 * trainer; its schema in src/config) plus one line in `BUILT_IN`, or `registerAlgorithm` from
 * outside.
 */

/** One algorithm: what its command says, what its config is, what it launches, how it trains. */
export interface Algorithm {
  /** One line: `troupe --help`, `troupe <name> --help`, docs/algorithms.md. */
  readonly summary: string;
  /** Its run config (`algorithm: <name>`): what `loadConfig`, `--help` and `config show` read. */
  readonly schema: z.ZodType;
  /** Its actors as the config sees them (the keys of `actors.<name>`, which ones train). */
  readonly actors: Readonly<Record<string, ActorEntry>>;
  /** Its topology, one member per actor (`resolvePlacement` places it). */
  readonly topology: Readonly<Record<string, CastMember<never, never>>>;
  /** Its trainer, given the config `schema` validated. */
  readonly train: (config: never, opts: TrainOptions) => Promise<TrainResult>;
  /** The loss registry a config field names an entry of (docs): `dpo.loss` → PREFERENCE_LOSSES. */
  readonly losses?: { readonly field: string; readonly registry: ReadonlyMap<string, unknown> };
}

/** An entry typed by its config: the trainer takes what the schema returns. */
export function defineAlgorithm<C>(a: {
  readonly summary: string;
  readonly schema: z.ZodType<C>;
  readonly actors: Readonly<Record<string, ActorEntry>>;
  readonly topology: Readonly<Record<string, CastMember<C, never>>>;
  readonly train: (config: C, opts: TrainOptions) => Promise<TrainResult>;
  readonly losses?: Algorithm['losses'];
}): Algorithm {
  return a as unknown as Algorithm;
}

/** What the online algorithms' `rl.policyLoss` names. */
const RL_LOSSES = { field: 'rl.policyLoss', registry: POLICY_LOSSES } as const;

const BUILT_IN = {
  pretrain: defineAlgorithm({
    summary: 'next-token pretraining on packed text (data parallel, resumable)',
    schema: pretrainConfigSchema,
    actors: ALGORITHM_ACTORS.pretrain,
    topology: LM_TOPOLOGY,
    train: trainLm,
  }),
  sft: defineAlgorithm({
    summary: 'supervised fine-tuning on prompt/completion or chat data (full or LoRA)',
    schema: sftConfigSchema,
    actors: ALGORITHM_ACTORS.sft,
    topology: LM_TOPOLOGY,
    train: trainLm,
  }),
  rm: defineAlgorithm({
    summary: 'reward model (Bradley–Terry on a score head) from preference pairs',
    schema: rmConfigSchema,
    actors: ALGORITHM_ACTORS.rm,
    topology: RM_TOPOLOGY,
    train: trainPreference,
    losses: { field: 'rm.loss', registry: REWARD_MODEL_LOSSES },
  }),
  dpo: defineAlgorithm({
    summary: 'DPO and its family (cDPO, IPO, SimPO, ORPO, KTO) on preference pairs',
    schema: dpoConfigSchema,
    actors: ALGORITHM_ACTORS.dpo,
    topology: DPO_TOPOLOGY,
    train: trainPreference,
    losses: { field: 'dpo.loss', registry: PREFERENCE_LOSSES },
  }),
  ppo: defineAlgorithm({
    summary: 'PPO with a critic (GAE) and a KL penalty in the reward, on prompts and your rewards',
    schema: ppoConfigSchema,
    actors: ALGORITHM_ACTORS.ppo,
    topology: RL_TOPOLOGY,
    train: trainRl,
    losses: RL_LOSSES,
  }),
  grpo: defineAlgorithm({
    summary: 'GRPO: group-normalised advantages over n samples per prompt, KL as a loss term',
    schema: grpoConfigSchema,
    actors: ALGORITHM_ACTORS.grpo,
    topology: RL_TOPOLOGY,
    train: trainRl,
    losses: RL_LOSSES,
  }),
  rloo: defineAlgorithm({
    summary: 'RLOO: leave-one-out baseline over n samples per prompt',
    schema: rlooConfigSchema,
    actors: ALGORITHM_ACTORS.rloo,
    topology: RL_TOPOLOGY,
    train: trainRl,
    losses: RL_LOSSES,
  }),
  reinforce: defineAlgorithm({
    summary: 'REINFORCE++ (or -baseline): whitened returns, token-level KL in the reward',
    schema: reinforceConfigSchema,
    actors: ALGORITHM_ACTORS.reinforce,
    topology: RL_TOPOLOGY,
    train: trainRl,
    losses: RL_LOSSES,
  }),
} as const satisfies Record<keyof typeof ALGORITHM_ACTORS, Algorithm>;

/** The built-in algorithms' names. */
export type AlgorithmName = keyof typeof BUILT_IN;

const registry = new Map<string, Algorithm>(Object.entries(BUILT_IN));

/** Every algorithm by name, in the order `troupe --help` lists them: built-ins, then registered. */
export const ALGORITHMS: ReadonlyMap<string, Algorithm> = registry;

/** The entry of `name`; UNKNOWN_NAME listing the algorithms if there is none. */
export function algorithmEntry(name: string): Algorithm {
  return lookup(registry, name, 'algorithm');
}

const NAME = /^[a-z][a-z0-9-]*$/;

/**
 * Add an algorithm: from then on `loadConfig(name, …)` validates with its schema, `troupe
 * <name>` trains with it, `troupe --help` lists it and `troupe config show` places its actors.
 * Its schema's `actors` section must be made with `actorsSchema(name, a.actors)`. A taken or
 * malformed name (one a command line could not type) is refused.
 */
export function registerAlgorithm(name: string, a: Algorithm): void {
  if (!NAME.test(name)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Algorithm name '${name}': lower-case letters, digits and -, starting with a letter`,
    );
  }
  if (registry.has(name)) {
    throw new TroupeError('BAD_ARGUMENT', `Algorithm '${name}' is already registered`, {
      details: { algorithm: name },
    });
  }
  const missing = Object.keys(a.actors).filter((n) => !(n in a.topology));
  const extra = Object.keys(a.topology).filter((n) => !(n in a.actors));
  if (missing.length + extra.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Algorithm '${name}': its topology and its actors must name the same actors (actors only: ${missing.join(', ') || '—'}; topology only: ${extra.join(', ') || '—'})`,
    );
  }
  registerActors(name, a.actors);
  registry.set(name, a);
}

/**
 * A read-only view of a registry that may grow: its entries are computed at each access, so a
 * view made before an entry was registered shows it.
 */
export class LiveMap<K, V> implements ReadonlyMap<K, V> {
  constructor(private readonly entriesNow: () => Iterable<readonly [K, V]>) {}
  private now(): Map<K, V> {
    return new Map(this.entriesNow());
  }
  get size(): number {
    return this.now().size;
  }
  get(key: K): V | undefined {
    return this.now().get(key);
  }
  has(key: K): boolean {
    return this.now().has(key);
  }
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    for (const [k, v] of this.now()) fn(v, k, this);
  }
  entries(): MapIterator<[K, V]> {
    return this.now().entries();
  }
  keys(): MapIterator<K> {
    return this.now().keys();
  }
  values(): MapIterator<V> {
    return this.now().values();
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.now()[Symbol.iterator]();
  }
}

/** Every algorithm's config schema, by name (a view of ALGORITHMS). */
export const CONFIG_SCHEMAS: ReadonlyMap<string, z.ZodType> = new LiveMap(() =>
  [...registry].map(([n, a]) => [n, a.schema] as const),
);
