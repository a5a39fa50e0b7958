import type { Remote } from 'comlink';
import { hasCode, TroupeError } from '../errors.js';
import type { RuntimeInfo } from '../kernels/runtime.js';
import { anyDetached, buffersOf, checkCrossable } from './crossing.js';
import type { HostPlacement } from './isolation.js';
import type { ActorSpec, ActorUsage, SupervisorOptions, ThreadOptions } from './supervisor.js';
import { describeExit, LiveThread, type RoleSpec } from './thread.js';
import type { HostExit } from './transport.js';

export interface RestartPolicy {
  /** Restarts allowed over the actor's life; then calls fail with ACTOR_STOPPED. Default 3. */
  readonly maxRestarts: number;
  /** Wait before the first restart, ms; doubled (× `factor`) for each further one. Default 100. */
  readonly backoffMs: number;
  readonly factor: number;
}

const DEFAULT_RESTART: RestartPolicy = { maxRestarts: 3, backoffMs: 100, factor: 2 };

type Method = (...args: unknown[]) => Promise<unknown>;

const settled = () => undefined;

/**
 * A supervised host (a thread, or a process): restarts it when it dies (unless a role is
 * `stateful`: then it stays down and every call fails saying why), fails pending calls
 * with the reason, applies call timeouts, retries crashed calls of roles that allow it, runs
 * each role's `onStart` hook on every start, and stops single roles (`Actor.stop`).
 *
 * (Past 300 lines: one state machine. Restart, pending calls, timeouts, retries, hooks and stop
 * all read and change the same live host and restart count, and their order on a crash is the
 * contract docs/actors.md states; split, each piece would need the others' state.)
 */
export class SupervisedThread {
  private live: LiveThread | undefined;
  private starting: Promise<LiveThread> | undefined;
  /** Per live host, the rejects of its calls in flight (failed when it dies or is stopped). */
  private readonly pending = new Map<LiveThread, Set<(e: Error) => void>>();
  /** Per role, its calls not yet settled (retries included), which `stopRole` waits for. */
  private readonly inflight = new Map<string, Set<Promise<unknown>>>();
  private readonly stoppedRoles = new Set<string>();
  private readonly roleStops = new Map<string, Promise<void>>();
  private stopped = false;
  private failure: Error | undefined;
  restarts = 0;
  /** In-method time of this host's roles, µs (shared with every host that replaces it). */
  private readonly busy = new SharedArrayBuffer(8);
  /** Round-trip time of the calls that settled, ms (controller side). */
  private callMs = 0;
  private calls = 0;

  constructor(
    readonly name: string,
    private readonly specs: readonly ActorSpec<unknown, unknown>[],
    private readonly opts: ThreadOptions,
    private readonly sup: SupervisorOptions,
    readonly placement: HostPlacement,
    /** Called once every role has been stopped and the host is gone. */
    private readonly onEmpty: () => void,
  ) {}

  private get kind(): string {
    return this.placement.isolation === 'process' ? 'process' : 'thread';
  }

  get runtime(): RuntimeInfo | undefined {
    return this.live?.runtime;
  }

  get threadId(): number | undefined {
    return this.live?.threadId;
  }

  get pid(): number | undefined {
    return this.live?.pid;
  }

  /** Start a host for the roles not stopped, run their `onStart` hooks, and put it in service. */
  async start(restart: number): Promise<LiveThread> {
    const active = this.specs.filter((s) => !this.stoppedRoles.has(s.name));
    const roles: RoleSpec[] = [];
    for (const s of active) {
      const args = restart > 0 && s.restartArgs ? await s.restartArgs() : s.args;
      roles.push({ name: s.name, role: s.role, args });
    }
    const events = { log: this.sup.onLog ?? (() => {}), metric: this.sup.onMetric ?? (() => {}) };
    const live = await LiveThread.start(
      this.name,
      this.placement.launch,
      this.opts.runtime ?? { backend: 'auto' },
      roles,
      events,
      this.opts.startTimeoutMs ?? 120_000,
      { busy: this.busy, env: this.placement.env },
    );
    live.onExit((exit) => this.onExit(live, exit));
    for (const s of active) {
      if (!s.onStart) continue;
      try {
        await s.onStart(this.remote(s.name, undefined, live) as Remote<unknown>, { restart });
      } catch (e) {
        await live.stop();
        throw new TroupeError(
          'ACTOR_START_FAILED',
          `Actor '${s.name}': its onStart hook failed${restart > 0 ? ` after restart ${restart}` : ''}: ${(e as Error)?.message ?? e}`,
          { cause: e, details: { actor: s.name, restart } },
        );
      }
    }
    if (this.stopped) {
      await live.stop();
      throw this.stoppedError();
    }
    // A role stopped while this host was starting was built anyway: stop it there.
    for (const s of active) if (this.stoppedRoles.has(s.name)) await live.stopRole(s.name);
    this.live = live;
    return live;
  }

  private onExit(live: LiveThread, exit: HostExit): void {
    const error = exit.error as Error | undefined;
    const message = `Actor ${this.kind} '${this.name}' died (${describeExit(exit)})${error ? `: ${error.message}` : ''}`;
    const cause = error ?? new Error(`${this.kind} ended (${describeExit(exit)})`);
    this.retire(live, cause, message, { exitCode: exit.code, signal: exit.signal });
  }

  /**
   * Take a dead or stuck host out of service: fail its pending calls with the reason, stop it,
   * and, if it was the one in service, schedule its replacement. Only the first report counts.
   */
  private retire(
    live: LiveThread,
    cause: unknown,
    message: string,
    details: Record<string, unknown> = {},
  ): void {
    const kept = this.keptDown();
    const crashed = new TroupeError('ACTOR_CRASHED', kept ? `${message}. ${kept}` : message, {
      cause,
      details: { actor: this.name, ...details, ...(kept ? { restarted: false } : {}) },
    });
    this.failPending(live, crashed);
    if (this.stopped || this.live !== live) return;
    this.live = undefined;
    void live.stop();
    if (kept) this.failure = crashed;
    else this.scheduleRestart(cause);
  }

  /** Why this host stays down when it dies (a running role is `stateful`), or undefined. */
  private keptDown(): string | undefined {
    const reasons = this.specs
      .filter((s) => s.stateful !== undefined && !this.stoppedRoles.has(s.name))
      .map((s) => s.stateful);
    return reasons.length > 0 ? `It is not restarted: ${reasons.join('; ')}` : undefined;
  }

  private scheduleRestart(cause: unknown): void {
    const policy = { ...DEFAULT_RESTART, ...this.opts.restart };
    if (this.restarts >= policy.maxRestarts) {
      this.failure = new TroupeError(
        'ACTOR_STOPPED',
        `Actor ${this.kind} '${this.name}' used up its ${policy.maxRestarts} restarts; last failure: ${(cause as Error)?.message ?? cause}`,
        { cause, details: { actor: this.name } },
      );
      return;
    }
    this.restarts++;
    const restart = this.restarts;
    const wait = policy.backoffMs * policy.factor ** (restart - 1);
    this.sup.onRestart?.({ thread: this.name, restart, cause });
    this.starting = new Promise<void>((r) => setTimeout(r, wait)).then(() => {
      if (this.stopped) throw this.stoppedError();
      return this.start(restart);
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

  private failPending(live: LiveThread | undefined, e: Error): void {
    for (const [l, rejects] of this.pending) {
      if (live !== undefined && l !== live) continue;
      for (const reject of rejects) reject(e);
      this.pending.delete(l);
    }
  }

  private stoppedError(): TroupeError {
    return new TroupeError(
      'ACTOR_STOPPED',
      `Actor ${this.kind} '${this.name}' has been shut down`,
      {
        details: { actor: this.name },
      },
    );
  }

  private stoppedRoleError(role: string, method: string): TroupeError {
    return new TroupeError(
      'ACTOR_STOPPED',
      `Actor '${role}' was stopped (Actor.stop()): ${role}.${method}() cannot run`,
      { details: { actor: role, method } },
    );
  }

  /** Throws when `role` can take no more calls. */
  private refuse(role: string, method: string): void {
    if (this.stoppedRoles.has(role)) throw this.stoppedRoleError(role, method);
    if (this.stopped) throw this.stoppedError();
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

  /** A typed proxy on `role`: through the supervisor, or (hooks) straight to host `live`. */
  remote(role: string, timeout: number | undefined, live?: LiveThread): unknown {
    return new Proxy(
      {},
      {
        get: (_, method) => {
          if (typeof method !== 'string' || method === 'then') return undefined;
          return (...args: unknown[]) =>
            live
              ? this.callOn(live, role, method, args, timeout ?? this.opts.callTimeoutMs)
              : this.call(role, method, args, timeout);
        },
      },
    );
  }

  /**
   * Call `method` on role `role` with the host's (or this call's) timeout; if the role allows
   * it (`retryOnCrash`), a call that failed because the host crashed is sent again to the
   * host that replaced it.
   */
  call(
    role: string,
    method: string,
    args: unknown[],
    timeoutMs = this.opts.callTimeoutMs,
  ): Promise<unknown> {
    const p = this.callRetrying(role, method, args, timeoutMs);
    const set = this.inflight.get(role) ?? new Set();
    this.inflight.set(role, set);
    const done = p.then(settled, settled);
    set.add(done);
    void done.then(() => set.delete(done));
    return p;
  }

  private async callRetrying(
    role: string,
    method: string,
    args: unknown[],
    timeoutMs: number | undefined,
  ): Promise<unknown> {
    const retries = this.specs.find((s) => s.name === role)?.retryOnCrash ?? 0;
    for (let attempt = 0; ; attempt++) {
      // Checked when the call is made: a call made before stop() runs, and stop() waits for it.
      if (attempt === 0) this.refuse(role, method);
      const live = await this.current();
      const buffers = attempt < retries ? buffersOf(args) : [];
      try {
        return await this.callOn(live, role, method, args, timeoutMs);
      } catch (e) {
        const final = attempt >= retries || this.failure !== undefined;
        if (!hasCode(e, 'ACTOR_CRASHED') || final || this.stoppedRoles.has(role)) {
          throw e;
        }
        if (anyDetached(buffers)) {
          throw new TroupeError(
            'ACTOR_CRASHED',
            `${e.message}; ${role}.${method}() was not retried: its arguments were transferred to the host that died (pass copies for retryOnCrash)`,
            { cause: e, details: { ...e.details, method } },
          );
        }
        this.sup.onRetry?.({ actor: role, method, attempt: attempt + 1, cause: e });
      }
    }
  }

  /** One call on host `live`: it fails if that host dies, is stopped, or the call times out. */
  private callOn(
    live: LiveThread,
    role: string,
    method: string,
    args: unknown[],
    timeoutMs: number | undefined,
  ): Promise<unknown> {
    if (live.exited) {
      return Promise.reject(
        new TroupeError('ACTOR_CRASHED', `Actor ${this.kind} '${this.name}' has exited`, {
          details: { actor: this.name },
        }),
      );
    }
    if (live.isolation === 'process') {
      try {
        checkCrossable(args, 'args', `Call ${role}.${method}()`, this.name);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const remote = live.remotes.get(role) as unknown as Record<string, Method> | undefined;
    if (!remote) {
      // Stopped while this call waited for a restart: the new host does not have the role.
      return Promise.reject(this.stoppedRoleError(role, method));
    }
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const pendingOf = this.pending.get(live) ?? new Set();
      this.pending.set(live, pendingOf);
      const settle = () => {
        if (timer) clearTimeout(timer);
        pendingOf.delete(reject);
        this.callMs += performance.now() - t0;
        this.calls++;
      };
      pendingOf.add(reject);
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          settle();
          reject(
            new TroupeError(
              'ACTOR_TIMEOUT',
              `Call ${role}.${method}() did not answer within ${timeoutMs} ms: this call fails, and ${this.kind} '${this.name}' is replaced for the calls after it`,
              {
                details: { actor: role, method, timeoutMs },
              },
            ),
          );
          // A call that does not answer means a stuck host: replace it.
          this.retire(
            live,
            new Error(`${role}.${method}() hung`),
            `Actor ${this.kind} '${this.name}' was replaced: ${role}.${method}() hung`,
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

  /** Calls settled, their round trips and the time the host spent in them, so far. */
  usage(): ActorUsage {
    const busyMs = Number(Atomics.load(new BigInt64Array(this.busy, 0, 1), 0)) / 1000;
    return { calls: this.calls, callMs: this.callMs, busyMs };
  }

  /**
   * Stop one role: new calls fail with ACTOR_STOPPED at once, calls already made are waited for,
   * then the role is freed — the whole host when it was the last role running there, otherwise
   * the role alone (its channel closes and its `dispose()` runs in the host). Idempotent.
   */
  stopRole(role: string): Promise<void> {
    let p = this.roleStops.get(role);
    if (!p) {
      this.stoppedRoles.add(role);
      p = this.freeRole(role);
      this.roleStops.set(role, p);
    }
    return p;
  }

  private async freeRole(role: string): Promise<void> {
    await Promise.all(this.inflight.get(role) ?? []);
    if (this.stopped) return;
    if (this.specs.every((s) => this.stoppedRoles.has(s.name))) {
      await this.stop();
      this.onEmpty();
      return;
    }
    // Colocated: the host runs on for its other roles. (A host starting now stops it itself.)
    if (this.live && !this.live.exited) await this.live.stopRole(role);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.failPending(undefined, this.stoppedError());
    const live = this.live;
    this.live = undefined;
    await this.starting?.catch(() => undefined);
    await live?.stop();
  }
}
