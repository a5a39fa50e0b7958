import { z } from 'zod';
import { TroupeError } from '../errors.js';
import { BACKEND_CHOICES, type BackendName } from '../kernels/backends/types.js';
import { parseDevice } from '../kernels/device.js';
import { PRECISIONS } from '../kernels/precision.js';
import type { RuntimeSpec } from '../kernels/runtime.js';

const NAME = /^[a-z][a-z0-9_-]*$/;

/** One actor of a topology. */
export const actorSchema = z
  .object({
    /** The actor's name: `policy`, `reference`, `reward`, `critic`, … */
    name: z.string().regex(NAME, 'lower-case letters, digits, - and _, starting with a letter'),
    /** Which role it plays (a key of the roles the algorithm provides). */
    role: z.string().min(1),
    /**
     * Data-parallel replicas (trainable roles); each gets its own thread. A colocated actor has
     * its host's count: one instance on each of the host's threads.
     */
    replicas: z.number().int().min(1).default(1),
    /** Device for the actor's runtime: `cpu`, `gpu`, `gpu:N`. Unset: the backend's own. */
    device: z.string().optional(),
    /** Backend for the actor's runtime; `auto` picks the best available. */
    backend: z.enum(BACKEND_CHOICES).default('auto'),
    /** BLAS threads per call of the actor's thread (native kernels). Unset: the process's. */
    blasThreads: z.number().int().min(1).optional(),
    /** Matrix-product precision of the actor's thread (src/kernels/precision.ts). Unset: fp32. */
    precision: z.enum(PRECISIONS).optional(),
    /** Share the thread (and runtime, and device) of this other actor. */
    colocateWith: z.string().optional(),
  })
  .strict();

export const topologySchema = z
  .object({ actors: z.array(actorSchema).min(1, 'a topology needs at least one actor') })
  .strict()
  .superRefine((t, ctx) => {
    const names = new Map(t.actors.map((a, i) => [a.name, i]));
    if (names.size !== t.actors.length) {
      ctx.addIssue({ code: 'custom', path: ['actors'], message: 'actor names must be unique' });
    }
    for (const [i, a] of t.actors.entries()) {
      const at = (field: string, message: string) => {
        ctx.addIssue({ code: 'custom', path: ['actors', i, field], message });
      };
      if (a.device !== undefined) {
        try {
          parseDevice(a.device);
        } catch (e) {
          at('device', (e as Error).message);
        }
      }
      if (a.colocateWith === undefined) continue;
      const host = t.actors[names.get(a.colocateWith) ?? -1];
      if (!host) {
        at('colocateWith', `'${a.colocateWith}' is not an actor of this topology`);
        continue;
      }
      if (host.name === a.name) {
        at('colocateWith', 'an actor cannot colocate with itself');
        continue;
      }
      if (host.colocateWith !== undefined) {
        at(
          'colocateWith',
          `'${host.name}' is itself colocated with '${host.colocateWith}': colocate with that one`,
        );
      }
      if (a.replicas !== host.replicas) {
        at(
          'replicas',
          `a colocated actor runs one instance beside each replica of '${host.name}' (${host.replicas}): set replicas: ${host.replicas}`,
        );
      }
      if (a.device !== undefined && a.device !== host.device) {
        at(
          'device',
          `a colocated actor shares '${host.name}''s device (${host.device ?? 'default'}); remove 'device' here`,
        );
      }
      if (a.blasThreads !== undefined && a.blasThreads !== host.blasThreads) {
        at(
          'blasThreads',
          `a colocated actor shares '${host.name}''s thread and its BLAS threads (${host.blasThreads ?? 'default'}); remove 'blasThreads' here`,
        );
      }
      if (a.precision !== undefined && a.precision !== host.precision) {
        at(
          'precision',
          `a colocated actor shares '${host.name}''s thread and its precision (${host.precision ?? 'fp32'}); remove 'precision' here`,
        );
      }
      if (a.backend !== 'auto' && a.backend !== host.backend) {
        at(
          'backend',
          `a colocated actor shares '${host.name}''s backend (${host.backend}); remove 'backend' here`,
        );
      }
    }
  });

export type Topology = z.infer<typeof topologySchema>;
export type TopologyInput = z.input<typeof topologySchema>;

/** Validate a topology spec once, at the boundary; errors name the field and say how to fix it. */
export function parseTopology(input: unknown): Topology {
  const r = topologySchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new TroupeError('BAD_TOPOLOGY', `Invalid topology:\n  ${lines.join('\n  ')}`, {
      details: { issues: r.error.issues.map((i) => ({ path: i.path, message: i.message })) },
    });
  }
  return Object.freeze(r.data);
}

/** One thread the topology needs: its runtime and the actors (replica instances) it hosts. */
export interface ThreadPlan {
  readonly thread: string;
  readonly runtime: RuntimeSpec;
  readonly actors: ReadonlyArray<{
    readonly name: string;
    readonly role: string;
    readonly replica: number;
    readonly replicas: number;
  }>;
}

/**
 * Where everything runs: one thread per replica of each actor, with colocated actors folded
 * into their host's threads, one instance beside each host replica (veRL's hybrid engine: each
 * policy replica's thread also holds its generator and its reference). Replica r of actor
 * `policy` is named `policy/r` when replicas > 1.
 */
export function planThreads(t: Topology): ThreadPlan[] {
  const plans = new Map<
    string,
    { thread: string; runtime: RuntimeSpec; actors: ThreadPlan['actors'][number][] }
  >();
  for (const a of t.actors.filter((x) => x.colocateWith === undefined)) {
    for (let r = 0; r < a.replicas; r++) {
      const name = a.replicas > 1 ? `${a.name}/${r}` : a.name;
      plans.set(name, {
        thread: name,
        runtime: {
          backend: a.backend as BackendName | 'auto',
          device: a.device,
          ...(a.blasThreads === undefined ? {} : { blasThreads: a.blasThreads }),
          ...(a.precision === undefined ? {} : { precision: a.precision }),
        },
        actors: [{ name, role: a.role, replica: r, replicas: a.replicas }],
      });
    }
  }
  for (const a of t.actors.filter((x) => x.colocateWith !== undefined)) {
    for (let r = 0; r < a.replicas; r++) {
      const one = a.replicas === 1;
      const host = plans.get(one ? a.colocateWith! : `${a.colocateWith}/${r}`)!;
      host.actors.push({
        name: one ? a.name : `${a.name}/${r}`,
        role: a.role,
        replica: r,
        replicas: a.replicas,
      });
      host.thread = host.actors.map((x) => x.name).join('+');
    }
  }
  return [...plans.values()];
}
