import type { Remote } from 'comlink';
import { TroupeError } from '../errors.js';
import type { RuntimeInfo, RuntimeSpec } from '../kernels/runtime.js';
import type { LogRecord, MetricRecord } from './protocol.js';
import type { RoleRef } from './role.js';
import { LiveThread, type RoleSpec } from './thread.js';

export interface RestartPolicy {
  /** Restarts allowed over the actor's life; then calls fail with ACTOR_STOPPED. Default 3. */
  readonly maxRestarts: number;
  /** Wait before the first restart, ms; doubled (× `factor`) for each further one. Default 100. */
  readonly backoffMs: number;
  readonly factor: number;
}

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
}

export interface ThreadOptions {
  /** Backend and device of the thread's tensor runtime. Default `{ backend: 'auto' }`. */
  readonly runtime?: RuntimeSpec;
  /** How long the thread may take to start and build its roles. Default 120 s. */
  readonly startTimeoutMs?: number;
  /**
   * How long one call may take before it fails with ACTOR_TIMEOUT; the thread is then treated
   * as hung and restarted. Default: no limit. Override per call with `withTimeout`.
   */
  readonly callTimeoutMs?: number;
  readonly restart?: Partial<RestartPolicy>;
}

export interface SupervisorOptions {
  /** Log records from every actor (library code never prints; the controller renders). */
  readonly onLog?: (record: LogRecord) => void;
  readonly onMetric?: (record: MetricRecord) => void;
  /** Restart events: which thread, which restart, and why. */
  readonly onRestart?: (event: { thread: string; restart: number; cause: unknown }) => void;
}

const DEFAULT_RESTART: RestartPolicy = { maxRestarts: 3, backoffMs: 100, factor: 2 };

type Method = (...args: unknown[]) => Promise<unknown>;

/**
 * A supervised thread: restarts it when it dies, fails pending calls with the reason, applies
 * call timeouts, and hands out typed proxies to its roles.
 */
class SupervisedThread {
  private live: LiveThread | undefined;
  private starting: Promise<LiveThread> | undefined;
  private readonly pending = new Set<(e: Error) => void>();
  private stopped = false;
  private failure: Error | undefined;
  restarts = 0;
  /** In-method time of this thread's roles, µs (shared with every thread that replaces it). */
  private readonly busy = new SharedArrayBuffer(8);
  /** Round-trip time of the calls that settled, ms (controller side). */
  private callMs = 0;
  private calls = 0;

  constructor(
    readonly name: string,
    private readonly specs: readonly ActorSpec<unknown, unknown>[],
    private readonly opts: ThreadOptions,
    private readonly sup: SupervisorOptions,
  ) {}

  get runtime(): RuntimeInfo | undefined {
    return this.live?.runtime;
  }

  get threadId(): number | undefined {
    return this.live?.threadId;
  }

  async start(useRestartArgs: boolean): Promise<LiveThread> {
    const roles: RoleSpec[] = [];
    for (const s of this.specs) {
      const args = useRestartArgs && s.restartArgs ? await s.restartArgs() : s.args;
      roles.push({ name: s.name, role: s.role, args });
    }
    const events = { log: this.sup.onLog ?? (() => {}), metric: this.sup.onMetric ?? (() => {}) };
    const live = await LiveThread.start(
      this.name,
      this.opts.runtime ?? { backend: 'auto' },
      roles,
      events,
      this.opts.startTimeoutMs ?? 120_000,
      this.busy,
    );
    live.onExit((code, error) => this.onExit(live, code, error));
    this.live = live;
    return live;
  }

  private onExit(live: LiveThread, code: number, error: unknown): void {
    const message = `Actor thread '${this.name}' died (exit code ${code})${error ? `: ${(error as Error).message}` : ''}`;
    this.retire(live, error ?? new Error(`thread exited with code ${code}`), message, {
      exitCode: code,
    });
  }

  /**
   * Take a dead or stuck thread out of service: fail its pending calls with the reason, stop
   * it, and schedule its replacement. Only the first report about a thread counts.
   */
  private retire(
    live: LiveThread,
    cause: unknown,
    message: string,
    details: Record<string, unknown> = {},
  ): void {
    if (this.stopped || this.live !== live) return;
    this.live = undefined;
    this.failPending(
      new TroupeError('ACTOR_CRASHED', message, {
        cause,
        details: { actor: this.name, ...details },
      }),
    );
    void live.stop();
    this.scheduleRestart(cause);
  }

  private scheduleRestart(cause: unknown): void {
    const policy = { ...DEFAULT_RESTART, ...this.opts.restart };
    if (this.restarts >= policy.maxRestarts) {
      this.failure = new TroupeError(
        'ACTOR_STOPPED',
        `Actor thread '${this.name}' used up its ${policy.maxRestarts} restarts; last failure: ${(cause as Error)?.message ?? cause}`,
        { cause, details: { actor: this.name } },
      );
      return;
    }
    this.restarts++;
    const wait = policy.backoffMs * policy.factor ** (this.restarts - 1);
    this.sup.onRestart?.({ thread: this.name, restart: this.restarts, cause });
    this.starting = new Promise<void>((r) => setTimeout(r, wait)).then(() => {
      if (this.stopped) throw this.stoppedError();
      return this.start(true);
    });
    this.starting.then(
      () => {
        this.starting = undefined;
      },
      (e) => {
        this.starting = undefined;
        if (!this.stopped) this.scheduleRestart(e);
      },
    );
  }

  private failPending(e: Error): void {
    for (const reject of this.pending) reject(e);
    this.pending.clear();
  }

  private stoppedError(): TroupeError {
    return new TroupeError('ACTOR_STOPPED', `Actor thread '${this.name}' has been shut down`, {
      details: { actor: this.name },
    });
  }

  private async current(): Promise<LiveThread> {
    for (;;) {
      if (this.stopped) throw this.stoppedError();
      if (this.failure) throw this.failure;
      if (this.live && !this.live.exited) return this.live;
      if (this.starting) {
        try {
          await this.starting;
        } catch {
          // A failed restart schedules the next one (or records the failure); look again.
          await new Promise((r) => setTimeout(r, 10));
        }
        continue;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Call `method` on role `role`, with the thread's (or this call's) timeout. */
  async call(
    role: string,
    method: string,
    args: unknown[],
    timeoutMs = this.opts.callTimeoutMs,
  ): Promise<unknown> {
    const live = await this.current();
    const remote = live.remotes.get(role) as unknown as Record<string, Method>;
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = () => {
        if (timer) clearTimeout(timer);
        this.pending.delete(reject);
        this.callMs += performance.now() - t0;
        this.calls++;
      };
      this.pending.add(reject);
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          settle();
          reject(
            new TroupeError(
              'ACTOR_TIMEOUT',
              `Call ${role}.${method}() did not answer within ${timeoutMs} ms: this call fails, and thread '${this.name}' is replaced for the calls after it`,
              {
                details: { actor: role, method, timeoutMs },
              },
            ),
          );
          // A call that does not answer means a stuck thread: replace it.
          this.retire(
            live,
            new Error(`${role}.${method}() hung`),
            `Actor thread '${this.name}' was replaced: ${role}.${method}() hung`,
          );
        }, timeoutMs);
      }
      remote[method](...args).then(
        (v) => {
          settle();
          resolve(v);
        },
        (e) => {
          settle();
          reject(e);
        },
      );
    });
  }

  /** Calls settled, their round trips and the time the thread spent in them, so far. */
  usage(): ActorUsage {
    const busyMs = Number(Atomics.load(new BigInt64Array(this.busy, 0, 1), 0)) / 1000;
    return { calls: this.calls, callMs: this.callMs, busyMs };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.failPending(this.stoppedError());
    const live = this.live;
    this.live = undefined;
    await this.starting?.catch(() => undefined);
    await live?.stop();
    // A restart that was under way when stop began may have installed a thread: stop it too.
    await (this.live as LiveThread | undefined)?.stop();
  }
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

/** A typed handle on one actor. `call.method(...)` runs `method` in the actor's thread. */
export interface Actor<R> {
  readonly name: string;
  /** The actor's role, typed; every method returns a promise. */
  readonly call: Remote<R>;
  /** Like `call`, with a per-call timeout in ms. */
  withTimeout(ms: number): Remote<R>;
  /** Times the thread has been restarted. */
  readonly restarts: number;
  /** The tensor runtime the thread runs (backend, device, why). */
  readonly runtime: RuntimeInfo | undefined;
  /** The thread's id (for diagnostics and tests). */
  readonly threadId: number | undefined;
  /** Calls, round trips and in-thread time so far (shared by colocated actors). */
  usage(): ActorUsage;
}

function handle<R>(thread: SupervisedThread, role: string): Actor<R> {
  const proxy = (timeout?: number) =>
    new Proxy(
      {},
      {
        get: (_, method) => {
          if (typeof method !== 'string' || method === 'then') return undefined;
          return (...args: unknown[]) => thread.call(role, method, args, timeout);
        },
      },
    ) as Remote<R>;
  return {
    name: role,
    call: proxy(),
    withTimeout: (ms) => proxy(ms),
    get restarts() {
      return thread.restarts;
    },
    get runtime() {
      return thread.runtime;
    },
    get threadId() {
      return thread.threadId;
    },
    usage: () => thread.usage(),
  };
}

/**
 * Starts and supervises actors. Each actor is a worker thread with its own tensor runtime; roles
 * spawned together with `spawnColocated` share one thread and one runtime.
 */
export class Supervisor {
  private readonly threads: SupervisedThread[] = [];
  private closed = false;

  constructor(private readonly opts: SupervisorOptions = {}) {}

  /** Start one actor in its own thread and wait until it is ready. */
  async spawn<R, A>(spec: ActorSpec<R, A>, options: ThreadOptions = {}): Promise<Actor<R>> {
    const [actor] = await this.spawnColocated(
      spec.name,
      [spec as unknown as ActorSpec<unknown, unknown>],
      options,
    );
    return actor as Actor<R>;
  }

  /**
   * Start several roles in one thread (one runtime, one device): for roles that are small or
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
    const t = new SupervisedThread(
      thread,
      specs as readonly ActorSpec<unknown, unknown>[],
      options,
      this.opts,
    );
    await t.start(false);
    this.threads.push(t);
    return specs.map((s) => handle(t, s.name)) as never;
  }

  /** Stop every actor: pending calls fail with ACTOR_STOPPED, threads and ports are released. */
  async shutdown(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.stop()));
    this.threads.length = 0;
  }
}
