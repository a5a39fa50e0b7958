import type { RoleRef } from '../actors/role.js';
import type { Supervisor } from '../actors/supervisor.js';
import { type Topology, topologySchema } from '../actors/topology.js';
import {
  type ActorWhere,
  type LaunchOptions,
  type Placement,
  type RoleTable,
  Troupe,
} from '../actors/troupe.js';
import {
  type ActorAlgorithm,
  type ActorEntry,
  type ActorPlacementConfig,
  type ALGORITHM_ACTORS,
  actorsOf,
} from '../config/actors.js';
import { TroupeError } from '../errors.js';
import type { BackendName } from '../kernels/backends/index.js';
import { planBlasThreads, useBlasThreads } from '../kernels/native.js';
import { type Precision, precisionProblem } from '../kernels/precision.js';

/*
 * The launcher: an algorithm's topology (data: which actors, what each plays, when a run has it,
 * what it needs) plus the config's `actors` section (where each runs) become a running Troupe.
 * Placement is resolved by a pure function, so `troupe config show` prints exactly what a run
 * will start. (Past 300 lines: the member type, the resolution and the launch read each other's
 * rules, colocation and crash retries, and are kept in one place.)
 */

type Backend = BackendName | 'auto';

/** One actor of an algorithm's topology. `C` is the algorithm's config, `I` what a run hands in. */
export interface CastMember<C, I> {
  // biome-ignore lint/suspicious/noExplicitAny: each member plays its own role type
  readonly role: RoleRef<any, any>;
  /** Whether a run of `c` has this actor (default: always): the critic only for `gae`, … */
  readonly when?: (c: C) => boolean;
  /**
   * Whether it does tensor work while the others do, so that its thread gets a share of the
   * cores as BLAS threads (default: always; the reward actor and a precomputed reference not).
   */
  readonly computes?: (c: C) => boolean;
  /** Its placement where neither `actors.<name>` nor anything else says (the reward: `cpu`). */
  readonly placement?: { readonly backend: Backend; readonly device?: string };
  /**
   * Actors whose start it waits for, because its arguments read them; per config where that
   * depends on the placement (a generator colocated with the policy reads nothing of it first).
   */
  readonly needs?: readonly string[] | ((c: C) => readonly string[]);
  /**
   * Stateless: a call that fails because its thread crashed is sent again to its restart, unless
   * it shares that thread with a trainable actor, whose thread is not restarted at all (rebuilt
   * from its start arguments, a policy would silently lose its weights: lostOnRestart).
   */
  readonly retryCrashed?: boolean;
  /** Its arguments for one replica; `started` holds the actors of `needs`, running. */
  readonly args: (c: C, input: I, p: Placement, started: Troupe) => unknown;
}

/**
 * A member playing `role`, its arguments checked against the role's at compile time:
 * `plays(GENERATOR, { needs: ['policy'], args: … })`.
 */
export function plays<R, A, C, I>(
  role: RoleRef<R, A>,
  m: Omit<CastMember<C, I>, 'role' | 'args'> & {
    readonly args: (c: C, input: I, p: Placement, started: Troupe) => A | Promise<A>;
  },
): CastMember<C, I> {
  return { ...m, role };
}

/** An algorithm's topology: one member per actor name that `actors.<name>` of its config takes. */
export type AlgorithmTopology<A extends ActorAlgorithm, C, I> = {
  readonly [N in keyof (typeof ALGORITHM_ACTORS)[A]]: CastMember<C, I>;
};

/** The fields of a config the placement reads. */
export interface PlacedConfig {
  /** An algorithm of ALGORITHMS (its actors: `actorsOf`). */
  readonly algorithm: string;
  readonly runtime: {
    readonly backend: Backend;
    readonly device?: string;
    readonly replicas: number;
    readonly blasThreads?: number;
    readonly precision?: Precision;
  };
  readonly actors?: Readonly<Record<string, ActorPlacementConfig | undefined>>;
}

/** Where one actor of a run runs, every default resolved. */
export interface PlacedActor {
  readonly name: string;
  /** The thread (shared with its host when colocated; `name/r` per replica). */
  readonly thread: string;
  readonly backend: Backend;
  readonly device?: string;
  readonly blasThreads: number;
  /** Its thread's matrix-product precision, where not fp32. */
  readonly precision?: Precision;
  readonly replicas: number;
  readonly colocateWith?: string;
  readonly trainable: boolean;
  readonly computes: boolean;
}

export interface ResolvedPlacement {
  /** The run's actors, in the topology's order. */
  readonly actors: readonly PlacedActor[];
  /** As a topology spec (`Troupe.launch` starts it). */
  readonly topology: Topology;
  /** Threads that compute alongside each other (replicas count one each). */
  readonly computing: number;
  /** BLAS threads per call of a thread whose actor does not set its own. */
  readonly blasThreads: number;
}

/** The actors `m` waits for in a run of `c`. */
function needsOf<C, I>(m: CastMember<C, I>, c: C): readonly string[] {
  return typeof m.needs === 'function' ? m.needs(c) : (m.needs ?? []);
}

function bad(field: string, message: string): TroupeError {
  return new TroupeError('BAD_ARGUMENT', `${field}: ${message}`, { details: { field } });
}

/**
 * Where each actor of a run of `c` runs. Unset fields keep what runs did before `actors`
 * existed: every model actor on `runtime.backend` / `runtime.device`, the reward actor (or any
 * member with a `placement`) on its own, the main learner with `runtime.replicas` replicas and
 * every other actor one, and each thread `runtime.blasThreads` BLAS threads, or the cores
 * shared out among the computing threads. A colocated actor takes its host's thread, runtime and
 * BLAS threads. Errors name the config field.
 */
export function resolvePlacement<A extends ActorAlgorithm, C extends PlacedConfig, I>(
  topology: AlgorithmTopology<A, C, I>,
  c: C,
): ResolvedPlacement {
  const members = topology as unknown as Readonly<Record<string, CastMember<C, I>>>;
  const table: Readonly<Record<string, ActorEntry>> = actorsOf(c.algorithm);
  const given = c.actors ?? {};
  const present = Object.keys(members).filter((n) => members[n].when?.(c) ?? true);
  for (const [name, p] of Object.entries(given)) {
    if (p !== undefined && !present.includes(name)) {
      throw bad(
        `actors.${name}`,
        `this ${c.algorithm} run has no '${name}' actor (its actors: ${present.join(', ')}); remove the entry`,
      );
    }
  }
  const cfg = (name: string): ActorPlacementConfig => given[name] ?? {};
  const hostOf = (name: string): string | undefined => {
    const host = cfg(name).colocateWith;
    if (host !== undefined && !present.includes(host)) {
      throw bad(
        `actors.${name}.colocateWith`,
        `this ${c.algorithm} run has no '${host}' actor (its actors: ${present.join(', ')})`,
      );
    }
    return host;
  };
  for (const name of present) {
    const host = hostOf(name);
    if (host === undefined) continue;
    const waits = needsOf(members[name], c).includes(host)
      ? [name, host]
      : needsOf(members[host], c).includes(name)
        ? [host, name]
        : undefined;
    if (waits) {
      throw bad(
        `actors.${name}.colocateWith`,
        `'${waits[0]}' starts after '${waits[1]}' (its arguments read it), so the two cannot share a thread; remove colocateWith`,
      );
    }
  }
  const computes = (name: string) => members[name].computes?.(c) ?? true;
  // A colocated actor has one instance beside each of its host's replicas.
  const replicasOf = (name: string): number => {
    const host = hostOf(name);
    if (host !== undefined) return cfg(name).replicas ?? replicasOf(host);
    return cfg(name).replicas ?? (table[name].replicasFromRuntime ? c.runtime.replicas : 1);
  };
  const hosts = present.filter((n) => hostOf(n) === undefined);
  // A thread computes when its host or any actor sharing it does; each replica is a thread.
  const computing = hosts.reduce((n, h) => {
    const busy = computes(h) || present.some((x) => hostOf(x) === h && computes(x));
    return n + (busy ? replicasOf(h) : 0);
  }, 0);
  const blasThreads = planBlasThreads(computing, c.runtime.blasThreads);
  const own = (name: string) => {
    const p = cfg(name);
    const fixed = members[name].placement;
    return {
      backend: p.backend ?? fixed?.backend ?? c.runtime.backend,
      device: p.device ?? (fixed ? fixed.device : c.runtime.device),
      blasThreads: p.blasThreads ?? blasThreads,
      precision: p.precision ?? c.runtime.precision ?? 'fp32',
    };
  };
  const spec = present.map((name) => {
    const host = hostOf(name);
    const p = cfg(name);
    const where = host === undefined ? own(name) : own(host);
    return {
      name,
      role: name,
      replicas: replicasOf(name),
      // A colocated actor shares its host's: what it sets itself must agree (checked below).
      backend: p.backend ?? where.backend,
      device: p.device ?? where.device,
      blasThreads: p.blasThreads ?? where.blasThreads,
      // fp32 is left out: the placement of an fp32 run reads as it did before precision existed
      ...((p.precision ?? where.precision) === 'fp32'
        ? {}
        : { precision: p.precision ?? where.precision }),
      ...(host === undefined ? {} : { colocateWith: host }),
    };
  });
  for (const a of spec) {
    // bf16 on a backend named in config that cannot compute it: refused before anything starts
    const why =
      a.precision &&
      a.backend !== 'auto' &&
      precisionProblem(a.backend, a.precision, { available: true });
    if (why) {
      const field =
        cfg(a.name).precision !== undefined ? `actors.${a.name}.precision` : 'runtime.precision';
      throw new TroupeError('UNSUPPORTED', `${field}: ${why}`, {
        details: { field, backend: a.backend, precision: a.precision },
      });
    }
  }
  const parsed = topologySchema.safeParse({ actors: spec });
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    const [, index, field] = issue.path as [string, number | undefined, string | undefined];
    const at = index === undefined ? 'actors' : `actors.${spec[index].name}`;
    throw bad(field === undefined ? at : `${at}.${field}`, issue.message);
  }
  const topo = parsed.data;
  const threadOf = (name: string, replicas: number) => {
    const host = hostOf(name) ?? name;
    const sharing = [host, ...present.filter((x) => hostOf(x) === host)].join('+');
    return replicas > 1 ? `${sharing}/0…${replicas - 1}` : sharing;
  };
  return {
    actors: topo.actors.map((a) => ({
      name: a.name,
      thread: threadOf(a.name, a.replicas),
      backend: a.backend,
      ...(a.device === undefined ? {} : { device: a.device }),
      blasThreads: a.blasThreads!,
      ...(a.precision === undefined ? {} : { precision: a.precision }),
      replicas: a.replicas,
      ...(a.colocateWith === undefined ? {} : { colocateWith: a.colocateWith }),
      trainable: table[a.name].trainable,
      computes: computes(a.name),
    })),
    topology: topo,
    computing,
    blasThreads,
  };
}

/** One line per thread: which actors, on what, with how many BLAS threads. */
export function describePlacement(p: ResolvedPlacement): string[] {
  const lines: string[] = [];
  for (const a of p.actors) {
    if (a.colocateWith !== undefined) continue;
    const sharing = p.actors.filter((x) => x.colocateWith === a.name).map((x) => x.name);
    const who = sharing.length > 0 ? ` (${[a.name, ...sharing].join(', ')})` : '';
    const replicas = a.replicas > 1 ? `, ${a.replicas} data-parallel replicas` : '';
    lines.push(
      `${a.thread}${who}: backend ${a.backend}, device ${a.device ?? 'default'}, ${a.blasThreads} BLAS thread${a.blasThreads === 1 ? '' : 's'}${a.precision === undefined ? '' : `, precision ${a.precision}`}${replicas}`,
    );
  }
  return lines;
}

/** Times a crashed call of a stateless actor is sent again (three tries in all, as restarts). */
const CRASH_RETRIES = 2;

/**
 * Why a trainable actor's thread is not restarted when it dies, even idle between steps: rebuilt
 * from its start arguments it would train on from the start weights, silently. As with TRL or
 * OpenRLHF, the run stops, and a resume continues it from its last checkpoint, exactly.
 */
export const lostOnRestart = (actor: string): string =>
  `'${actor}' holds what it has trained (weights, optimiser state), which a restart from its start arguments would lose. The run stops here: run the same command with --resume to continue from its last checkpoint`;

export interface LaunchInput<I> {
  readonly supervisor: Supervisor;
  /** What the members' `args` read: the start model, the resume directory, … */
  readonly input: I;
  /** Values a data-parallel replica of `actor` all-reduces (its model's parameters and more). */
  readonly reduceLength: number | ((actor: string) => number);
  /** A role of your own in place of a member's (the same arguments): `{ reward: MY_REWARD }`. */
  readonly roles?: Readonly<Record<string, RoleRef<unknown, unknown> | undefined>>;
  /** The run's log (what was placed where). */
  readonly log: (message: string) => void;
  readonly options?: LaunchOptions;
}

/** A running cast: the troupe, where it was placed, and where each actor started. */
export interface Cast {
  readonly troupe: Troupe;
  readonly placement: ResolvedPlacement;
  /** Each actor instance's thread and runtime as it started (before any stop or restart). */
  readonly started: readonly ActorWhere[];
}

/**
 * Start a run's actors: resolve their placement, give each thread its BLAS threads, make the
 * data-parallel groups of replicated learners, and launch the topology (the generator after the
 * policy whose weights it reads, everything else in parallel). Calls to stateless actors that
 * fail because their thread crashed are sent again to the restarted thread by the supervisor,
 * where no stateful actor (a learner) shares that thread; a learner's thread is not restarted
 * (lostOnRestart): the run stops with an error that says to resume.
 */
export async function launch<A extends ActorAlgorithm, C extends PlacedConfig, I>(
  topology: AlgorithmTopology<A, C, I>,
  c: C,
  l: LaunchInput<I>,
): Promise<Cast> {
  const members = topology as unknown as Readonly<Record<string, CastMember<C, I>>>;
  const placement = resolvePlacement(topology, c);
  // The default for every thread (and anything else this process starts), as before.
  useBlasThreads(placement.computing, c.runtime.blasThreads);
  l.log(
    `BLAS threads per call: ${placement.blasThreads} (${placement.computing} computing actor(s))`,
  );
  // Retried only where every actor of its thread is stateless: the restart rebuilds them all.
  const retried = (a: PlacedActor) =>
    placement.actors.every((x) => x.thread !== a.thread || members[x.name].retryCrashed === true);
  const roles: RoleTable = Object.fromEntries(
    placement.actors.map((a) => {
      const m = members[a.name];
      return [
        a.name,
        {
          ref: l.roles?.[a.name] ?? m.role,
          // A caller's own role stands in for the member's: found by either (the generator's
          // arguments look the policy up by POLICY).
          ...(l.roles?.[a.name] ? { serves: m.role } : {}),
          args: (p: Placement, started: Troupe) => m.args(c, l.input, p, started),
          after: needsOf(m, c),
          reduceLength: !a.trainable
            ? undefined
            : typeof l.reduceLength === 'number'
              ? l.reduceLength
              : l.reduceLength(a.name),
          retryOnCrash: retried(a) ? CRASH_RETRIES : undefined,
          stateful: a.trainable ? lostOnRestart(a.name) : undefined,
        },
      ];
    }),
  );
  const troupe = await Troupe.launch(l.supervisor, placement.topology, roles, l.options);
  for (const line of describePlacement(placement)) l.log(`placed ${line}`);
  return { troupe, placement, started: troupe.where() };
}
