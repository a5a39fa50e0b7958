import * as Comlink from 'comlink';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogRecord, MetricRecord } from '../../src/actors/protocol.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { TroupeError } from '../../src/errors.js';
import { ECHO, MISSING } from './fixtures/echo-role.js';

const runtime = { backend: 'cpu' as const };
let sup: Supervisor | undefined;

afterEach(async () => {
  await sup?.shutdown();
  sup = undefined;
});

function resources(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'MessagePort' || r === 'Worker')
    .sort();
}

describe('Supervisor with real worker threads', () => {
  it('spawns an actor with its own runtime, calls it with types, and shuts down leaving nothing', async () => {
    const before = resources();
    sup = new Supervisor();
    const a = await sup.spawn({ name: 'echo', role: ECHO, args: { tag: 'a' } }, { runtime });
    expect(await a.call.echo({ x: [1, 2] })).toEqual({ x: [1, 2] });
    const who = await a.call.whoAmI();
    expect(who).toMatchObject({ tag: 'a', backend: 'cpu', name: 'echo' });
    expect(who.threadId).toBe(a.threadId);
    expect(a.runtime?.backend).toBe('cpu');
    expect(await a.call.matmul(8)).toEqual({ value: 8 * 8 * 8, numTensors: 0 });
    await sup.shutdown();
    sup = undefined;
    await expect(a.call.echo(1)).rejects.toMatchObject({ code: 'ACTOR_STOPPED' });
    expect(resources()).toEqual(before);
  });

  it('counts calls, their round trips and the time the thread spent in them', async () => {
    sup = new Supervisor();
    const a = await sup.spawn({ name: 'usage', role: ECHO, args: { tag: 'u' } }, { runtime });
    const before = a.usage();
    await a.call.sleep(120);
    await a.call.echo(1);
    await a.call.fail('x').catch(() => undefined);
    const u = a.usage();
    expect(u.calls - before.calls).toBe(3);
    // The thread was inside sleep() for ≥ 120 ms, and no call took less than the thread's time.
    expect(u.busyMs - before.busyMs).toBeGreaterThanOrEqual(115);
    expect(u.callMs - before.callMs).toBeGreaterThanOrEqual(u.busyMs - before.busyMs);
  });

  it('keeps an error’s class, code, details, cause, stack and actor across the thread', async () => {
    sup = new Supervisor();
    const a = await sup.spawn({ name: 'failing', role: ECHO, args: { tag: 'f' } }, { runtime });
    const e = await a.call.fail('bad input').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TroupeError);
    expect(e).toMatchObject({
      code: 'BAD_ARGUMENT',
      message: 'bad input',
      details: { tag: 'f' },
      actor: 'failing',
    });
    const cause = (e as Error).cause as Error;
    expect(cause.name).toBe('RangeError');
    expect(cause.message).toBe('inner cause');
    expect((e as Error).stack).toContain('echo-role');
    expect((e as Error).stack).toContain("at actor 'failing'");
  });

  it('restarts a thread killed mid-call: the pending call fails with the reason, the next succeeds', async () => {
    const restarts: number[] = [];
    sup = new Supervisor({ onRestart: (ev) => restarts.push(ev.restart) });
    const a = await sup.spawn(
      { name: 'mortal', role: ECHO, args: { tag: 'm' } },
      { runtime, restart: { backoffMs: 10 } },
    );
    const first = a.threadId;
    const err = await a.call.die(20).catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'ACTOR_CRASHED' });
    expect((err as Error).message).toMatch(/Actor thread 'mortal' died \(exit code 3\)/);
    expect(await a.call.echo('again')).toBe('again');
    expect(a.restarts).toBe(1);
    expect(restarts).toEqual([1]);
    expect(a.threadId).not.toBe(first);
  });

  it('times out a hung call with a clear error, replaces the stuck thread, and carries on', async () => {
    sup = new Supervisor();
    const a = await sup.spawn(
      { name: 'stuck', role: ECHO, args: { tag: 's' } },
      { runtime, callTimeoutMs: 300, restart: { backoffMs: 10 } },
    );
    const t0 = Date.now();
    const err = await a.call.block(60_000).catch((x: unknown) => x);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(err).toMatchObject({ code: 'ACTOR_TIMEOUT' });
    expect((err as Error).message).toBe(
      "Call stuck.block() did not answer within 300 ms: this call fails, and thread 'stuck' is replaced for the calls after it",
    );
    expect(await a.call.echo('alive')).toBe('alive');
    expect(a.restarts).toBe(1);
    // A per-call timeout overrides the thread's.
    expect(await a.withTimeout(5_000).sleep(500)).toBe('slept');
  });

  it('gives up after maxRestarts and says why', async () => {
    sup = new Supervisor();
    const a = await sup.spawn(
      { name: 'fragile', role: ECHO, args: { tag: 'x' } },
      { runtime, restart: { maxRestarts: 1, backoffMs: 5 } },
    );
    await a.call.die(5).catch(() => undefined);
    await a.call.echo(1); // restarted once
    await a.call.die(5).catch(() => undefined);
    const err = await a.call.echo(2).catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'ACTOR_STOPPED' });
    expect((err as Error).message).toMatch(/used up its 1 restarts/);
  });

  it('rebuilds a restarted role from restartArgs (e.g. the latest checkpoint)', async () => {
    sup = new Supervisor();
    let generation = 0;
    const a = await sup.spawn(
      {
        name: 'ckpt',
        role: ECHO,
        args: { tag: 'initial' },
        restartArgs: () => ({ tag: `restart-${++generation}` }),
      },
      { runtime, restart: { backoffMs: 5 } },
    );
    expect((await a.call.whoAmI()).tag).toBe('initial');
    await a.call.die(5).catch(() => undefined);
    expect((await a.call.whoAmI()).tag).toBe('restart-1');
  });

  it('keeps a stateful role down when its host dies idle: later calls fail naming the host and what a restart would lose', async () => {
    const retried: string[] = [];
    sup = new Supervisor({ onRetry: (ev) => retried.push(ev.method) });
    const a = await sup.spawn(
      { name: 'learner', role: ECHO, args: { tag: 'trained' }, stateful: 'it holds its weights' },
      { runtime, restart: { backoffMs: 5 } },
    );
    await a.call.dieIdle(5); // answered: nothing is in flight when the thread dies
    await new Promise((r) => setTimeout(r, 200)); // a restart (5 ms backoff) would be up by now
    expect(a.restarts).toBe(0);
    for (const call of [() => a.call.whoAmI(), () => a.call.echo(1)]) {
      const e = await call().catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'ACTOR_CRASHED', details: { restarted: false } });
      expect((e as Error).message).toMatch(
        /^Actor thread 'learner' died \(exit code 3\)\. It is not restarted: it holds its weights$/,
      );
    }
    // In flight: the same, and a stateless role on the same host is not retried either.
    const b = await sup.spawnColocated(
      'pair',
      [
        { name: 'held', role: ECHO, args: { tag: 'h' }, stateful: 'held state' },
        { name: 'free', role: ECHO, args: { tag: 'f' }, retryOnCrash: 2 },
      ],
      { runtime, restart: { backoffMs: 5 } },
    );
    const e = await b[1].call.die(5).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'ACTOR_CRASHED' });
    expect((e as Error).message).toMatch(/'pair' died .*It is not restarted: held state$/);
    await expect(b[1].call.echo(1)).rejects.toMatchObject({ code: 'ACTOR_CRASHED' });
    expect(b[0].restarts).toBe(0);
    expect(retried).toEqual([]);
  });

  it('fails to start with the reason: a missing factory, or a start timeout', async () => {
    sup = new Supervisor();
    const e = await sup
      .spawn({ name: 'nope', role: MISSING, args: { tag: 'n' } }, { runtime })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'ACTOR_START_FAILED' });
    expect((e as Error).message).toMatch(/has no factory 'noSuchFactory'/);
    const t = await sup
      .spawn({ name: 'slow', role: ECHO, args: { tag: 's' } }, { runtime, startTimeoutMs: 1 })
      .catch((x: unknown) => x);
    expect(t).toMatchObject({ code: 'ACTOR_START_FAILED' });
    expect((t as Error).message).toMatch(/did not become ready within 1 ms/);
  });

  it('transfers buffers instead of copying them: the sender’s buffer is detached', async () => {
    sup = new Supervisor();
    const a = await sup.spawn({ name: 'xfer', role: ECHO, args: { tag: 't' } }, { runtime });
    const buf = new Float32Array([1, 2, 3, 4]);
    expect(await a.call.sum(Comlink.transfer(buf, [buf.buffer]))).toBe(10);
    expect(buf.buffer.byteLength).toBe(0);
  });

  it('colocates roles in one thread, and forwards their logs and metrics to the controller', async () => {
    const logs: LogRecord[] = [];
    const metrics: MetricRecord[] = [];
    sup = new Supervisor({ onLog: (r) => logs.push(r), onMetric: (m) => metrics.push(m) });
    const [ref, rm] = await sup.spawnColocated(
      'ref+rm',
      [
        { name: 'reference', role: ECHO, args: { tag: 'ref' } },
        { name: 'reward', role: ECHO, args: { tag: 'rm' } },
      ],
      { runtime },
    );
    const [w1, w2] = await Promise.all([ref.call.whoAmI(), rm.call.whoAmI()]);
    expect(w1.threadId).toBe(w2.threadId);
    expect([w1.tag, w2.tag]).toEqual(['ref', 'rm']);
    await rm.call.report(7);
    await new Promise((r) => setTimeout(r, 50));
    expect(logs).toContainEqual(
      expect.objectContaining({
        actor: 'reward',
        level: 'info',
        message: 'step 7 done',
        data: { step: 7 },
      }),
    );
    expect(metrics).toContainEqual(
      expect.objectContaining({ actor: 'reward', name: 'echo/step', value: 7, step: 7 }),
    );
  });
});
