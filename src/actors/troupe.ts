import { TroupeError } from '../errors.js';
import type { RuntimeInfo } from '../kernels/runtime.js';
import { type AllReduceShared, createAllReduce } from './allreduce.js';
import type { RoleRef } from './role.js';
import type { Actor, ActorSpec, Supervisor, ThreadOptions } from './supervisor.js';
import { planThreads, type ThreadPlan, type Topology } from './topology.js';

/** Where one actor instance sits: what its role factory is told about it. */
export interface Placement {
  readonly name: string;
  readonly replica: number;
  readonly replicas: number;
  /**
   * Its data-parallel group: set for each replica of an actor with replicas > 1 whose role says
   * how many values it all-reduces (`reduceLength`); one group per actor, made by the launcher.
   */
  readonly dataParallel?: { readonly shared: AllReduceShared; readonly rank: number };
}

/** How to build one role of a topology. */
export interface RoleEntry {
  readonly ref: RoleRef<unknown, unknown>;
  /**
   * The role whose methods `ref` serves when it stands in for one (a caller's own policy with
   * the same arguments and methods): the actor is then looked up by either.
   */
  readonly serves?: RoleRef<unknown, unknown>;
  /**
   * Its arguments for one placement. `started` holds every actor named in `after`, already
   * running (the generator reads the policy's weights handle from it).
   */
  readonly args: (p: Placement, started: Troupe) => unknown;
  /** Actors that must be running before this role's arguments are made. */
  readonly after?: readonly string[];
  /** Values a replica all-reduces each step: replicas > 1 of this role get a shared group. */
  readonly reduceLength?: number;
  /**
   * Stateless (a reward, a reference, a generator that syncs on start): a call that failed
   * because the thread crashed is sent again to the restarted thread, up to this many times
   * (the supervisor's `retryOnCrash`).
   */
  readonly retryOnCrash?: number;
  /**
   * What a restart would lose (a learner's trained weights): its thread is then not restarted
   * when it dies, and its calls fail saying this (the supervisor's `stateful`).
   */
  readonly stateful?: string;
}

/** How to build each role of a topology, by the role names the topology's actors play. */
export type RoleTable = Readonly<Record<string, RoleEntry>>;

export type LaunchOptions = Omit<ThreadOptions, 'runtime'>;

/** Where an actor runs: its thread (colocated actors share one) and that thread's runtime. */
export interface ActorWhere {
  readonly actor: string;
  readonly thread: string;
  readonly runtime: RuntimeInfo | undefined;
  readonly threadId: number | undefined;
}

/** Refuses threads that wait for each other, before any starts. */
function checkAcyclic(plans: readonly ThreadPlan[], deps: readonly number[][]): void {
  const done = new Set<number>();
  const visit = (i: number, path: readonly number[]) => {
    if (done.has(i)) return;
    if (path.includes(i)) {
      const cycle = [...path.slice(path.indexOf(i)), i].map((t) => plans[t].thread);
      throw new TroupeError('BAD_TOPOLOGY', `Actors wait for each other: ${cycle.join(' → ')}`);
    }
    for (const t of deps[i]) visit(t, [...path, i]);
    done.add(i);
  };
  for (let i = 0; i < plans.length; i++) visit(i, []);
}

/**
 * A launched topology: every actor started on its thread, looked up with its role's type.
 * `troupe.actor(POLICY, 'policy')` is an `Actor<PolicyRole>`.
 */
export class Troupe {
  private constructor(
    private readonly actors: Map<
      string,
      {
        readonly roles: readonly RoleRef<unknown, unknown>[];
        readonly handles: Actor<unknown>[];
      }
    >,
    private readonly plans: readonly ThreadPlan[],
  ) {}

  /**
   * Start every thread of `topology` under `supervisor` and wait for all: threads in parallel,
   * except that a thread waits for the threads of the actors its roles name in `after`.
   */
  static async launch(
    supervisor: Supervisor,
    topology: Topology,
    roles: RoleTable,
    options: LaunchOptions = {},
  ): Promise<Troupe> {
    for (const a of topology.actors) {
      if (!roles[a.role]) {
        throw new TroupeError(
          'BAD_TOPOLOGY',
          `Actor '${a.name}' plays role '${a.role}', which this algorithm does not provide. Known: ${Object.keys(roles).join(', ')}.`,
        );
      }
    }
    const plans = planThreads(topology);
    const baseOf = (instance: string) =>
      topology.actors.find((x) => instance === x.name || instance.startsWith(`${x.name}/`))!;
    // Every thread of an actor (one per replica): a thread that needs it waits for all of them.
    const threadsOf = new Map<string, number[]>();
    plans.forEach((plan, i) => {
      for (const a of plan.actors) {
        const name = baseOf(a.name).name;
        threadsOf.set(name, [...(threadsOf.get(name) ?? []), i]);
      }
    });
    const deps = plans.map((plan, i) => {
      const names = new Set(plan.actors.flatMap((a) => roles[a.role].after ?? []));
      return [...names].flatMap((name) => {
        const ts = threadsOf.get(name);
        if (ts === undefined) {
          throw new TroupeError(
            'BAD_TOPOLOGY',
            `Thread '${plan.thread}' needs actor '${name}' started first, and the topology has none`,
          );
        }
        if (ts.includes(i)) {
          throw new TroupeError(
            'BAD_TOPOLOGY',
            `Thread '${plan.thread}': an actor there needs '${name}' running before it starts, so the two cannot share a thread; place them apart`,
          );
        }
        return ts;
      });
    });
    const groups = new Map<string, AllReduceShared>();
    for (const a of topology.actors) {
      const length = roles[a.role].reduceLength;
      if (a.replicas > 1 && length !== undefined)
        groups.set(a.name, createAllReduce(a.replicas, length));
    }
    const troupe = new Troupe(new Map(), plans);
    checkAcyclic(plans, deps);
    const starts = new Map<number, Promise<void>>();
    const start = (i: number): Promise<void> => {
      const known = starts.get(i);
      if (known) return known;
      const p = Promise.all(deps[i].map(start)).then(async () => {
        const plan = plans[i];
        const specs: ActorSpec<unknown, unknown>[] = [];
        for (const a of plan.actors) {
          const shared = groups.get(baseOf(a.name).name);
          const placement = shared ? { ...a, dataParallel: { shared, rank: a.replica } } : a;
          const { ref, retryOnCrash, stateful } = roles[a.role];
          specs.push({
            name: a.name,
            role: ref,
            args: await roles[a.role].args(placement, troupe),
            ...(retryOnCrash ? { retryOnCrash } : {}),
            ...(stateful === undefined ? {} : { stateful }),
          });
        }
        const started = await supervisor.spawnColocated(plan.thread, specs, {
          ...options,
          runtime: plan.runtime,
        });
        plan.actors.forEach((a, j) => {
          const base = baseOf(a.name);
          const { ref, serves } = roles[base.role];
          const entry = troupe.actors.get(base.name) ?? {
            roles: serves ? [ref, serves] : [ref],
            handles: [],
          };
          entry.handles[a.replica] = started[j];
          troupe.actors.set(base.name, entry);
        });
      });
      starts.set(i, p);
      return p;
    };
    await Promise.all(plans.map((_, i) => start(i)));
    return troupe;
  }

  /** The actor `name`, typed by its role (which must be the one the topology gave it). */
  actor<R>(ref: RoleRef<R, unknown>, name: string): Actor<R> {
    return this.replicas(ref, name)[0];
  }

  /** The actor `name` if the topology has it (an optional actor: the critic, the reference). */
  find<R>(ref: RoleRef<R, unknown>, name: string): Actor<R> | undefined {
    return this.actors.has(name) ? this.actor(ref, name) : undefined;
  }

  /** Every replica of actor `name`, in rank order. */
  replicas<R>(ref: RoleRef<R, unknown>, name: string): Actor<R>[] {
    const entry = this.actors.get(name);
    if (!entry)
      throw new TroupeError(
        'UNKNOWN_NAME',
        `No actor '${name}'. Known: ${[...this.actors.keys()].sort().join(', ')}.`,
      );
    if (!entry.roles.some((r) => r.module === ref.module && r.exportName === ref.exportName)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Actor '${name}' plays ${entry.roles.map((r) => r.exportName).join(' for ')}, not ${ref.exportName}`,
      );
    }
    return entry.handles as Actor<R>[];
  }

  /** Every actor instance (replicas by their own names), in thread order. */
  all(): Actor<unknown>[] {
    return this.plans.flatMap((plan) =>
      plan.actors.map((a) => {
        const base = [...this.actors.entries()].find(
          ([name]) => a.name === name || a.name.startsWith(`${name}/`),
        )!;
        return base[1].handles[a.replica];
      }),
    );
  }

  /** One actor instance per thread, in thread order (for what is counted per thread: usage). */
  hosts(): Actor<unknown>[] {
    const all = this.all();
    let k = 0;
    return this.plans.map((plan) => {
      const first = all[k];
      k += plan.actors.length;
      return first;
    });
  }

  /** Where each actor instance runs: its thread's name, runtime and id. */
  where(): ActorWhere[] {
    const all = this.all();
    let k = 0;
    return this.plans.flatMap((plan) =>
      plan.actors.map((a) => {
        const h = all[k++];
        return { actor: a.name, thread: plan.thread, runtime: h.runtime, threadId: h.threadId };
      }),
    );
  }
}
