import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as Comlink from 'comlink';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '../../src/actors/supervisor.js';
import { LIFECYCLE } from './fixtures/lifecycle-role.js';

const runtime = { backend: 'cpu' as const };
const dir = mkdtempSync(join(tmpdir(), 'troupe-lifecycle-'));
let sup: Supervisor | undefined;

afterEach(async () => {
  await sup?.shutdown();
  sup = undefined;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The controller's open MessagePorts: a thread holds one for control and one per role. */
const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

describe('Actor.stop()', () => {
  it('frees a lone actor’s thread once its pending calls settle; later calls fail naming it', async () => {
    sup = new Supervisor();
    const before = ports();
    const [solo, other] = await Promise.all([
      sup.spawn({ name: 'solo', role: LIFECYCLE, args: { tag: 's' } }, { runtime }),
      sup.spawn({ name: 'other', role: LIFECYCLE, args: { tag: 'o' } }, { runtime }),
    ]);
    expect(ports()).toBe(before + 4);
    const order: string[] = [];
    const held = solo.call.hold(300).then((v) => {
      order.push('held');
      return v;
    });
    const stopping = solo.stop().then(() => order.push('stopped'));
    // Refused from the moment stop() is called, while the call made before it runs on.
    const late = await solo.call.version().catch((x: unknown) => x);
    expect(late).toMatchObject({
      code: 'ACTOR_STOPPED',
      message: "Actor 'solo' was stopped (Actor.stop()): solo.version() cannot run",
      details: { actor: 'solo', method: 'version' },
    });
    expect(await held).toBe('held');
    await stopping;
    expect(order).toEqual(['held', 'stopped']);
    expect(ports()).toBe(before + 2);
    await solo.stop(); // idempotent
    await expect(solo.call.where()).rejects.toMatchObject({ code: 'ACTOR_STOPPED' });
    // The supervisor's other actors are untouched.
    expect((await other.call.where()).name).toBe('other');
  });

  it('frees a colocated role alone (its dispose() runs there); a restart does not rebuild it', async () => {
    sup = new Supervisor();
    const before = ports();
    const [ref, pol] = await sup.spawnColocated(
      'reference+policy',
      [
        { name: 'reference', role: LIFECYCLE, args: { tag: 'r' } },
        { name: 'policy', role: LIFECYCLE, args: { tag: 'p' } },
      ],
      { runtime, restart: { backoffMs: 5 } },
    );
    const thread = pol.threadId;
    expect(ports()).toBe(before + 3);
    expect(await pol.call.tensors()).toBe(2); // each role holds one
    await ref.stop();
    expect(await pol.call.tensors()).toBe(1);
    expect(pol.threadId).toBe(thread);
    expect(ports()).toBe(before + 2); // control + the policy's
    await expect(ref.call.tensors()).rejects.toMatchObject({ code: 'ACTOR_STOPPED' });
    await pol.call.crash().catch(() => undefined);
    expect(await pol.call.tensors()).toBe(1); // the new thread built only the policy
    expect(pol.restarts).toBe(1);
    await pol.stop(); // the last role: the thread goes
    expect(ports()).toBe(before);
  });
});

describe('supervisor restarts for stateless roles', () => {
  it('retryOnCrash sends a crashed call again to the restarted thread', async () => {
    const retries: Array<{ actor: string; method: string; attempt: number }> = [];
    sup = new Supervisor({
      onRetry: ({ actor, method, attempt }) => retries.push({ actor, method, attempt }),
    });
    const [retrying, plain] = await Promise.all([
      sup.spawn(
        { name: 'reward', role: LIFECYCLE, args: { tag: 'r' }, retryOnCrash: 2 },
        { runtime, restart: { backoffMs: 5 } },
      ),
      sup.spawn(
        { name: 'plain', role: LIFECYCLE, args: { tag: 'p' } },
        { runtime, restart: { backoffMs: 5 } },
      ),
    ]);
    const first = retrying.threadId;
    // The retried call carries its (copied) arguments again: 41 + 1 + payload[0].
    expect(await retrying.call.crashOnce(join(dir, 'a'), 41, new Uint8Array([3]))).toBe(45);
    expect(retrying.restarts).toBe(1);
    expect(retrying.threadId).not.toBe(first);
    expect(retries).toEqual([{ actor: 'reward', method: 'crashOnce', attempt: 1 }]);
    // Without the option the crash reaches the caller, as before.
    const err = await plain.call.crashOnce(join(dir, 'b'), 1).catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'ACTOR_CRASHED' });
    expect((err as Error).message).toBe("Actor thread 'plain' died (exit code 5)");
    // A transferred argument went down with the thread: not retried, and said so.
    const payload = new Uint8Array([3]);
    const lost = await retrying.call
      .crashOnce(join(dir, 'c'), 1, Comlink.transfer(payload, [payload.buffer]))
      .catch((x: unknown) => x);
    expect(lost).toMatchObject({ code: 'ACTOR_CRASHED' });
    expect((lost as Error).message).toMatch(
      /reward\.crashOnce\(\) was not retried: its arguments were transferred/,
    );
    expect(retrying.restarts).toBe(2);
    expect(retries).toHaveLength(1);
  });

  it('onStart runs on start and after every restart, before other calls reach the role', async () => {
    const starts: number[] = [];
    sup = new Supervisor();
    const gen = await sup.spawn(
      {
        name: 'generator',
        role: LIFECYCLE,
        args: { tag: 'g' },
        onStart: async (role, { restart }) => {
          starts.push(restart);
          await role.sync(10 + restart);
        },
      },
      { runtime, restart: { backoffMs: 5 } },
    );
    expect(await gen.call.version()).toBe(10);
    await gen.call.crash().catch(() => undefined);
    expect(await gen.call.version()).toBe(11);
    expect(starts).toEqual([0, 1]);

    const before = ports();
    const failing = await sup
      .spawn(
        {
          name: 'broken',
          role: LIFECYCLE,
          args: { tag: 'b' },
          onStart: async () => {
            throw new Error('no weights published yet');
          },
        },
        { runtime },
      )
      .catch((x: unknown) => x);
    expect(failing).toMatchObject({ code: 'ACTOR_START_FAILED' });
    expect((failing as Error).message).toBe(
      "Actor 'broken': its onStart hook failed: no weights published yet",
    );
    expect(ports()).toBe(before);
  });
});
