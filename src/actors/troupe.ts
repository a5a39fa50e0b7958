import { TroupeError } from '../errors.js';
import type { RoleRef } from './role.js';
import type { Actor, ActorSpec, Supervisor, ThreadOptions } from './supervisor.js';
import { planThreads, type Topology } from './topology.js';

/** Where one actor instance sits: what its role factory is told about it. */
export interface Placement {
  readonly name: string;
  readonly replica: number;
  readonly replicas: number;
}

/** How to build each role of a topology: its reference and its arguments per placement. */
export type RoleTable = Readonly<
  Record<
    string,
    { readonly ref: RoleRef<unknown, unknown>; readonly args: (p: Placement) => unknown }
  >
>;

/**
 * A launched topology: every actor started on its thread, looked up with its role's type.
 * `troupe.actor(POLICY, 'policy')` is an `Actor<PolicyRole>`.
 */
export class Troupe {
  private constructor(
    private readonly actors: ReadonlyMap<
      string,
      { readonly role: RoleRef<unknown, unknown>; readonly handles: Actor<unknown>[] }
    >,
  ) {}

  /** Start every thread of `topology` under `supervisor` (in parallel) and wait for all. */
  static async launch(
    supervisor: Supervisor,
    topology: Topology,
    roles: RoleTable,
    options: Omit<ThreadOptions, 'runtime'> = {},
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
    const started = await Promise.all(
      plans.map((plan) => {
        const specs: ActorSpec<unknown, unknown>[] = plan.actors.map((a) => ({
          name: a.name,
          role: roles[a.role].ref,
          args: roles[a.role].args(a),
        }));
        return supervisor.spawnColocated(plan.thread, specs, { ...options, runtime: plan.runtime });
      }),
    );
    const byActor = new Map<
      string,
      { role: RoleRef<unknown, unknown>; handles: Actor<unknown>[] }
    >();
    plans.forEach((plan, i) => {
      plan.actors.forEach((a, j) => {
        const base = topology.actors.find(
          (x) => a.name === x.name || a.name.startsWith(`${x.name}/`),
        )!;
        const entry = byActor.get(base.name) ?? { role: roles[base.role].ref, handles: [] };
        entry.handles[a.replica] = started[i][j];
        byActor.set(base.name, entry);
      });
    });
    return new Troupe(byActor);
  }

  /** The actor `name`, typed by its role (which must be the one the topology gave it). */
  actor<R>(ref: RoleRef<R, unknown>, name: string): Actor<R> {
    return this.replicas(ref, name)[0];
  }

  /** Every replica of actor `name`, in rank order. */
  replicas<R>(ref: RoleRef<R, unknown>, name: string): Actor<R>[] {
    const entry = this.actors.get(name);
    if (!entry)
      throw new TroupeError(
        'UNKNOWN_NAME',
        `No actor '${name}'. Known: ${[...this.actors.keys()].join(', ')}.`,
      );
    if (entry.role.module !== ref.module || entry.role.exportName !== ref.exportName) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Actor '${name}' plays ${entry.role.exportName}, not ${ref.exportName}`,
      );
    }
    return entry.handles as Actor<R>[];
  }
}
