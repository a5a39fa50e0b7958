import type { Remote } from 'comlink';
import { TroupeError } from '../errors.js';
import type { RuntimeInfo, RuntimeSpec } from '../kernels/runtime.js';
import { placeHost } from './isolation.js';
import type { LogRecord, MetricRecord } from './protocol.js';
import type { RoleRef } from './role.js';
import { type RestartPolicy, SupervisedThread } from './supervised.js';
import type { Isolation } from './transport.js';

export type { RestartPolicy } from './supervised.js';
export type { Isolation } from './transport.js';

/** One actor to start: a role, its arguments, where it runs, and how it is supervised. */
export interface ActorSpec<R, A> {
  readonly name: string;
  readonly role: RoleRef<R, A>;
  readonly args: A;
  /**
   * Arguments for a restart (e.g. pointing at the latest checkpoint), asked for at restart time.
   * Default: the original `args` (the role rebuilds from its initial weights).
   */
  readonly restartArgs?: () => A | Promise<A>;
  /**
   * Why this role's host must not be restarted: what lives only there and a rebuild would lose
   * (a learner's trained weights and optimiser state). When such a host dies or hangs it stays
   * down: its calls then and every call after fail with ACTOR_CRASHED naming the host and this
   * reason, so a caller stops instead of carrying on from the start state. Overrides
   * `restartArgs` and `retryOnCrash` for every role of the host.
   */
  readonly stateful?: string;
  /**
   * For stateless roles (a reward, a reference model): a call that fails because the host
   * crashed (ACTOR_CRASHED) is sent again, to the host that replaced it, up to this many times.
   * Calls that time out are not retried (the timeout is the answer), nor calls whose arguments
   * were transferred to the dead host (their buffers went with it). Default 0.
   */
  readonly retryOnCrash?: number;
  /**
   * Runs when the host has started (`restart` 0) and again after every restart, before any other
   * call reaches the role: bring it up to date (a generator syncs its weights). Calls on `role`
   * go straight to the new host. If it throws, spawn fails (ACTOR_START_FAILED), or, on a
   * restart, that restart counts as failed and the next is tried while restarts last.
   */
  onStart?(role: Remote<R>, info: { readonly restart: number }): unknown;
}

export interface ThreadOptions {
  /** Backend and device of the host's tensor runtime. Default `{ backend: 'auto' }`. */
  readonly runtime?: RuntimeSpec;
  /**
   * `thread` (a worker thread of this process) or `process` (a child process: every call is
   * copied across, no shared memory; see docs/actors.md). Default `thread`, except a `gpu:N`
   * device on a backend that picks its GPU per process (tensorflow-gpu), which runs in a process
   * with CUDA_VISIBLE_DEVICES set; asking for a thread there is refused.
   */
  readonly isolation?: Isolation;
  /** Extra environment variables of a process host (on top of this process's). */
  readonly env?: Readonly<Record<string, string>>;
  /** How long the host may take to start and build its roles. Default 120 s. */
  readonly startTimeoutMs?: number;
  /**
   * How long one call may take before it fails with ACTOR_TIMEOUT; the host is then treated
   * as hung and restarted. Default: no limit. Override per call with `withTimeout`.
   */
  readonly callTimeoutMs?: number;
  readonly restart?: Partial<RestartPolicy>;
}

export interface SupervisorOptions {
  /** Log records from every actor (library code never prints; the controller renders). */
  readonly onLog?: (record: LogRecord) => void;
  readonly onMetric?: (record: MetricRecord) => void;
  /** Restart events: which host, which restart, and why. */
  readonly onRestart?: (event: { thread: string; restart: number; cause: unknown }) => void;
  /** A crashed call being sent again (`retryOnCrash`): which actor, method, attempt, and why. */
  readonly onRetry?: (event: {
    actor: string;
    method: string;
    attempt: number;
    cause: unknown;
  }) => void;
}

/**
 * What an actor's thread has been asked and has done, cumulative. `callMs − busyMs` is time in
 * messaging and queues: encoding, posting, waiting for the thread, decoding (concurrent calls to
 * one thread each count their wait).
 */
export interface ActorUsage {
  /** Calls that settled (answered, failed or timed out). */
  readonly calls: number;
  /** Their round trips on the controller, ms. */
  readonly callMs: number;
  /** Time the thread's roles spent inside methods, ms (from call to settle, awaits included). */
  readonly busyMs: number;
}

/** A typed handle on one actor. `call.method(...)` runs `method` in the actor's host. */
export interface Actor<R> {
  readonly name: string;
  /** The actor's role, typed; every method returns a promise. */
  readonly call: Remote<R>;
  /** Like `call`, with a per-call timeout in ms. */
  withTimeout(ms: number): Remote<R>;
  /** Times the host has been restarted. */
  readonly restarts: number;
  /** The tensor runtime the host runs (backend, device, why). */
  readonly runtime: RuntimeInfo | undefined;
  /** `thread` or `process`. */
  readonly isolation: Isolation;
  /** The worker thread's id (for diagnostics and tests); undefined for a process. */
  readonly threadId: number | undefined;
  /** The process the actor runs in: its own for `process`, this one for `thread`. */
  readonly pid: number | undefined;
  /** Calls, round trips and in-host time so far (shared by colocated actors). */
  usage(): ActorUsage;
  /**
   * Free the actor once it is done (a reference whose log-probs were precomputed). Calls made
   * after `stop()` fail with ACTOR_STOPPED naming the actor; calls already under way are waited
   * for, then the actor is freed: its whole host (thread or process, with its runtime) when no
   * other role runs there; a colocated role alone otherwise — its channel closes and its
   * `dispose()`, if it has one, frees its tensors, while its host runs on for the others.
   * Idempotent.
   */
  stop(): Promise<void>;
}

function handle<R>(thread: SupervisedThread, role: string): Actor<R> {
  return {
    name: role,
    call: thread.remote(role, undefined) as Remote<R>,
    withTimeout: (ms) => thread.remote(role, ms) as Remote<R>,
    get restarts() {
      return thread.restarts;
    },
    get runtime() {
      return thread.runtime;
    },
    isolation: thread.placement.isolation,
    get threadId() {
      return thread.threadId;
    },
    get pid() {
      return thread.pid;
    },
    usage: () => thread.usage(),
    stop: () => thread.stopRole(role),
  };
}

/**
 * Starts and supervises actors. Each actor is a worker thread (or, with `isolation: 'process'`,
 * a child process) with its own tensor runtime; roles spawned together with `spawnColocated`
 * share one host and one runtime.
 */
export class Supervisor {
  private readonly threads: SupervisedThread[] = [];
  private closed = false;

  constructor(private readonly opts: SupervisorOptions = {}) {}

  /** Start one actor in its own host (thread or process) and wait until it is ready. */
  async spawn<R, A>(spec: ActorSpec<R, A>, options: ThreadOptions = {}): Promise<Actor<R>> {
    const [actor] = await this.spawnColocated(
      spec.name,
      [spec as unknown as ActorSpec<unknown, unknown>],
      options,
    );
    return actor as Actor<R>;
  }

  /**
   * Start several roles in one host (one runtime, one device): for roles that are small or
   * that must share memory. A crash restarts them together.
   */
  async spawnColocated<Specs extends readonly ActorSpec<unknown, unknown>[]>(
    thread: string,
    specs: Specs,
    options: ThreadOptions = {},
  ): Promise<{
    [K in keyof Specs]: Specs[K] extends ActorSpec<infer R, unknown> ? Actor<R> : never;
  }> {
    if (this.closed) throw new TroupeError('ACTOR_STOPPED', 'This supervisor has been shut down');
    const names = specs.map((s) => s.name);
    if (new Set(names).size !== names.length) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Colocated roles need distinct names, got ${names.join(', ')}`,
      );
    }
    const placement = placeHost(thread, options);
    const t: SupervisedThread = new SupervisedThread(
      thread,
      specs as readonly ActorSpec<unknown, unknown>[],
      options,
      this.opts,
      placement,
      () => {
        const i = this.threads.indexOf(t);
        if (i >= 0) this.threads.splice(i, 1);
      },
    );
    await t.start(0);
    this.threads.push(t);
    return specs.map((s) => handle(t, s.name)) as never;
  }

  /** Stop every actor: pending calls fail with ACTOR_STOPPED; threads, processes and ports are released. */
  async shutdown(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.stop()));
    this.threads.length = 0;
  }
}
