import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as Comlink from 'comlink';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/actors/supervisor.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { TroupeError } from '../../src/errors.js';
import { LIFECYCLE, type LifecycleRole } from './fixtures/lifecycle-role.js';

const sup = new Supervisor();
afterAll(async () => {
  await sup.shutdown();
});

/** True while process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, withinMs = 5_000): Promise<boolean> {
  for (const end = Date.now() + withinMs; Date.now() < end; ) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !alive(pid);
}

describe('an actor in its own process', () => {
  let policy: Actor<LifecycleRole>;
  let reference: Actor<LifecycleRole>;
  beforeAll(async () => {
    [reference, policy] = await sup.spawnColocated(
      'reference+policy',
      [
        { name: 'reference', role: LIFECYCLE, args: { tag: 'r' } },
        { name: 'policy', role: LIFECYCLE, args: { tag: 'p' } },
      ],
      {
        runtime: { backend: 'wasm' },
        isolation: 'process',
        env: { TROUPE_TEST_VARIABLE: 'from the controller' },
      },
    );
  });

  it('runs its roles there, on the runtime and with the environment it was given', async () => {
    expect(policy.isolation).toBe('process');
    expect(policy.threadId).toBeUndefined();
    const where = await policy.call.where('TROUPE_TEST_VARIABLE');
    expect(where).toMatchObject({
      pid: policy.pid,
      threadId: 0, // the child's main thread
      backend: 'wasm',
      name: 'policy',
      env: 'from the controller',
    });
    expect(where.pid).not.toBe(process.pid);
    expect(policy.runtime?.backend).toBe('wasm');
    // The controller's own environment is inherited (vitest sets TROUPE_BLAS_THREADS).
    expect((await policy.call.where('TROUPE_BLAS_THREADS')).env).toBe(
      process.env['TROUPE_BLAS_THREADS'],
    );
  });

  it('copies what a thread would transfer, and counts the time spent in calls', async () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const back = await policy.call.poke(Comlink.transfer(bytes, [bytes.buffer]));
    expect([...back]).toEqual([7, 2, 3]);
    expect([...bytes]).toEqual([1, 2, 3]); // not detached, not changed: the child had a copy
    const before = policy.usage();
    expect(await policy.call.hold(120)).toBe('held');
    const u = policy.usage();
    expect(u.calls - before.calls).toBe(1);
    expect(u.busyMs - before.busyMs).toBeGreaterThanOrEqual(115);
    expect(u.callMs - before.callMs).toBeGreaterThanOrEqual(u.busyMs - before.busyMs);
  });

  it('keeps an error’s class, code, details, cause and stack across the process', async () => {
    const e = await policy.call.fail().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TroupeError);
    expect(e).toMatchObject({
      code: 'BAD_ARGUMENT',
      message: 'lifecycle says no',
      details: { why: 'test' },
    });
    expect(((e as Error).cause as Error).name).toBe('RangeError');
    expect(((e as Error).cause as Error).message).toBe('the inner reason');
    expect((e as Error).stack).toContain('lifecycle-role');
    expect((e as Error).stack).toContain(`(process ${policy.pid})`);
  });

  it('refuses shared memory and functions by name, in either direction', async () => {
    const result = await policy.call.shared().catch((x: unknown) => x);
    expect(result).toMatchObject({ code: 'UNSUPPORTED' });
    expect((result as Error).message).toMatch(
      /^policy\.shared\(\)'s result holds a SharedArrayBuffer at result, which cannot cross the boundary of actor process 'reference\+policy': shared memory \(SharedWeights, all-reduce\) works only between threads of one process/,
    );
    const shared = new Float32Array(new SharedArrayBuffer(16));
    const arg = await policy.call.poke({ weights: shared } as never).catch((x: unknown) => x);
    expect(arg).toMatchObject({ code: 'UNSUPPORTED', details: { path: 'args[0].weights' } });
    const fn = await policy.call.poke((() => 1) as never).catch((x: unknown) => x);
    expect(fn).toMatchObject({ code: 'UNSUPPORTED' });
    expect((fn as Error).message).toMatch(/^Call policy\.poke\(\) cannot cross to actor process/);
    const spawnArgs = await sup
      .spawn(
        { name: 'sharing', role: LIFECYCLE, args: { tag: 's', buffer: shared } as never },
        { runtime: { backend: 'cpu' }, isolation: 'process' },
      )
      .catch((x: unknown) => x);
    expect(spawnArgs).toMatchObject({ code: 'UNSUPPORTED', details: { path: 'args.buffer' } });
    // The actor is still well.
    expect((await policy.call.where()).name).toBe('policy');
  });

  it('stops one colocated role there (its dispose() runs in the child); the process runs on', async () => {
    const pid = policy.pid!;
    expect(await policy.call.tensors()).toBe(2);
    await reference.stop();
    expect(await policy.call.tensors()).toBe(1);
    await expect(reference.call.tensors()).rejects.toMatchObject({ code: 'ACTOR_STOPPED' });
    expect(policy.pid).toBe(pid);
    await policy.stop();
    expect(await gone(pid)).toBe(true);
  });
});

describe('supervising a process actor', () => {
  it('detects a crash, restarts the process, and replaces one whose call hung', async () => {
    const a = await sup.spawn(
      { name: 'mortal', role: LIFECYCLE, args: { tag: 'm' } },
      { runtime: { backend: 'cpu' }, isolation: 'process', restart: { backoffMs: 5 } },
    );
    const first = a.pid!;
    // An uncaught error: the child reports it before it exits, and the controller says it.
    const err = await a.call.explode('boom').catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'ACTOR_CRASHED', details: { exitCode: 1 } });
    expect((err as Error).message).toBe("Actor process 'mortal' died (exit code 1): boom");
    expect(((err as Error).cause as Error).stack).toContain('lifecycle-role');
    expect((await a.call.where()).name).toBe('mortal');
    expect(a.restarts).toBe(1);
    expect(alive(first)).toBe(false);
    const second = a.pid!;
    expect(second).not.toBe(first);
    const hung = await a
      .withTimeout(300)
      .block(60_000)
      .catch((x: unknown) => x);
    expect(hung).toMatchObject({ code: 'ACTOR_TIMEOUT' });
    expect((hung as Error).message).toBe(
      "Call mortal.block() did not answer within 300 ms: this call fails, and process 'mortal' is replaced for the calls after it",
    );
    expect((await a.call.where()).name).toBe('mortal');
    expect(a.restarts).toBe(2);
    expect(await gone(second)).toBe(true); // SIGTERM ended it mid-loop
  });

  it('leaves no process behind: not at shutdown, nor when the controller is killed', async () => {
    const own = new Supervisor();
    const a = await own.spawn(
      { name: 'tidy', role: LIFECYCLE, args: { tag: 't' } },
      { runtime: { backend: 'cpu' }, isolation: 'process' },
    );
    const pid = a.pid!;
    await own.shutdown();
    expect(alive(pid)).toBe(false);
    await expect(a.call.where()).rejects.toMatchObject({ code: 'ACTOR_STOPPED' });

    const tsx = createRequire(import.meta.url).resolve('tsx');
    const script = fileURLToPath(new URL('./fixtures/orphan-controller.ts', import.meta.url));
    const controller = spawn(process.execPath, ['--import', tsx, script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    controller.stdout.on('data', (d) => {
      out += d;
    });
    const signal = await new Promise((r) => controller.on('exit', (_code, s) => r(s)));
    expect(signal).toBe('SIGKILL');
    const { child } = JSON.parse(out) as { child: number };
    expect(child).toBeGreaterThan(0);
    expect(await gone(child)).toBe(true);
  });
});

describe('gpu:N on a backend that picks its device per process', () => {
  const hasGpuPackage = (() => {
    try {
      createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(hasGpuPackage)(
    'starts tensorflow-gpu on gpu:1 in a process (here it fails there: the package is absent)',
    async () => {
      const e = await sup
        .spawn(
          { name: 'gpu-policy', role: LIFECYCLE, args: { tag: 'g' } },
          { runtime: { backend: 'tensorflow-gpu', device: 'gpu:1' } },
        )
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'ACTOR_START_FAILED' });
      expect((e as Error).message).toMatch(
        /^Actor process 'gpu-policy' failed to start: Backend 'tensorflow-gpu' is not available: package '@tensorflow\/tfjs-node-gpu' is not installed/,
      );
      const thread = await sup
        .spawn(
          { name: 'gpu-thread', role: LIFECYCLE, args: { tag: 'g' } },
          { runtime: { backend: 'tensorflow-gpu', device: 'gpu:1' }, isolation: 'thread' },
        )
        .catch((x: unknown) => x);
      expect(thread).toMatchObject({ code: 'BAD_DEVICE' });
      expect((thread as Error).message).toMatch(/cannot be honoured in a thread/);
    },
  );
});
