import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/actors/protocol.js';
import { type Actor, Supervisor } from '../../src/actors/supervisor.js';
import { REWARD, type RewardArgs, type RewardRole } from '../../src/algorithms/roles/reward.js';
import { networkReason } from '../../src/reward/http-source.js';
import { defineSource, httpSource } from '../../src/reward/index.js';
import { withTimeout } from '../../src/reward/timeout.js';
import { ConstantRewardWatch } from '../../src/reward/watch.js';
import { batchOf } from './helpers.js';

const NEVER = fileURLToPath(new URL('./fixtures/never.mjs', import.meta.url));
const runtime = { backend: 'cpu' as const };
let sup: Supervisor | undefined;

afterEach(async () => {
  await sup?.shutdown();
  sup = undefined;
});

async function spawn(args: RewardArgs, logs: LogRecord[] = []): Promise<Actor<RewardRole>> {
  sup = new Supervisor({ onLog: (r) => logs.push(r) });
  return sup.spawn({ name: 'reward', role: REWARD, args }, { runtime });
}

/** A port nothing listens on: a server's, closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('a reward that never settles', () => {
  it('withTimeout fails the call with TASK_TIMEOUT naming the source and the setting, and aborts it', async () => {
    let signal: AbortSignal | undefined;
    const hang = defineSource('judge', (_b, opts) => {
      signal = opts.signal;
      return new Promise(() => {});
    });
    const t0 = Date.now();
    await expect(
      withTimeout(hang, 50, 'reward.timeoutMs').score(batchOf(['a'])),
    ).rejects.toMatchObject({
      code: 'TASK_TIMEOUT',
      message:
        "reward 'judge' did not answer within 50 ms (reward.timeoutMs: raise it for a slow scorer, or 0 for no limit)",
      details: { source: 'judge', timeoutMs: 50 },
    });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(signal?.aborted).toBe(true);
    // A source that answers in time is untouched.
    const quick = defineSource('quick', () => [1, 2]);
    expect([...(await withTimeout(quick, 1_000, 'x').score(batchOf(['a', 'b'])))]).toEqual([1, 2]);
  });

  it('in the reward actor: a hung module fails with the source named, and the actor keeps working', async () => {
    const a = await spawn({
      sources: [
        { type: 'module', name: 'hangs', path: NEVER },
        { type: 'length', target: 1 },
      ],
      timeoutMs: 300,
    });
    const e = await a.call.score(batchOf(['a'])).catch((x: unknown) => x);
    expect(e).toMatchObject({
      code: 'TASK_TIMEOUT',
      message: expect.stringContaining("reward 'hangs' did not answer within 300 ms"),
    });
    expect(a.restarts).toBe(0);
    expect(await a.call.names()).toEqual(['hangs', 'length']);
  });
});

describe('HTTP reward failures', () => {
  it('logs each retry and names the network cause (ECONNREFUSED), not just "fetch failed"', async () => {
    const port = await closedPort();
    const logged: string[] = [];
    const s = httpSource(
      { name: 'scorer', url: `http://127.0.0.1:${port}/score`, retries: 2, backoffMs: 1 },
      { log: (m) => logged.push(m) },
    );
    const e = (await s.score(batchOf(['a'])).catch((x: unknown) => x)) as Error;
    expect(e.message).toBe(
      `reward 'scorer': POST http://127.0.0.1:${port}/score failed after 3 attempts: network error: fetch failed (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port})`,
    );
    expect(logged).toEqual([
      `reward 'scorer': POST http://127.0.0.1:${port}/score attempt 1 of 3 failed: network error: fetch failed (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}); retrying in 1 ms`,
      `reward 'scorer': POST http://127.0.0.1:${port}/score attempt 2 of 3 failed: network error: fetch failed (ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}); retrying in 2 ms`,
    ]);
  });

  it('networkReason walks causes and AggregateErrors', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED ::1:80'), {
      code: 'ECONNREFUSED',
    });
    const v4 = Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:80'), { code: 'ETIMEDOUT' });
    const top = new TypeError('fetch failed', { cause: new AggregateError([refused, v4]) });
    expect(networkReason(top)).toBe(
      'fetch failed (ECONNREFUSED: connect ECONNREFUSED ::1:80; ETIMEDOUT: connect ETIMEDOUT 10.0.0.1:80)',
    );
    expect(networkReason(new Error('plain'))).toBe('plain');
  });

  it('in the reward actor, the retries reach the actor log as warnings', async () => {
    const port = await closedPort();
    const logs: LogRecord[] = [];
    const a = await spawn(
      {
        sources: [
          {
            type: 'http',
            name: 'scorer',
            url: `http://127.0.0.1:${port}/`,
            retries: 1,
            backoffMs: 1,
          },
        ],
      },
      logs,
    );
    await expect(a.call.score(batchOf(['a']))).rejects.toMatchObject({ code: 'BAD_REWARD' });
    const warn = logs.find((r) => r.level === 'warn');
    expect(warn).toMatchObject({
      actor: 'reward',
      message: expect.stringMatching(
        /attempt 1 of 2 failed: network error: .*ECONNREFUSED.*; retrying in 1 ms$/,
      ),
    });
  });
});

describe('module rewards with bad code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-bad-module-'));

  it('a syntax error fails the actor at start, naming the file and the line', async () => {
    const file = join(dir, 'syntax.mjs');
    writeFileSync(
      file,
      'export default function score({ completions }) {\n  return completions.map((c) => c.length;\n}\n',
    );
    const e = (await spawn({ sources: [{ type: 'module', name: 'mine', path: file }] }).catch(
      (x: unknown) => x,
    )) as Error;
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toContain(
      `reward 'mine': ${file}:2: SyntaxError: missing ) after argument list`,
    );
    expect(e.message).toContain('return completions.map((c) => c.length;');
  });

  it('a module without the export fails at start with the exports it has', async () => {
    const file = join(dir, 'named.mjs');
    writeFileSync(file, 'export function other() { return []; }\n');
    await expect(
      spawn({ sources: [{ type: 'module', name: 'mine', path: file }] }),
    ).rejects.toThrow(
      /reward 'mine': module file:.*named\.mjs has no function export 'default' \(exports: other\)/,
    );
  });

  it('a throw in the function says the line it was thrown at', async () => {
    const file = join(dir, 'throws.mjs');
    writeFileSync(
      file,
      'export default function score({ completions }) {\n  return completions.map((c) => c.foo.bar);\n}\n',
    );
    const a = await spawn({ sources: [{ type: 'module', name: 'mine', path: file }] });
    await expect(a.call.score(batchOf(['a']))).rejects.toThrow(
      new RegExp(
        `TypeError: Cannot read properties of undefined \\(reading 'bar'\\) \\(at ${file}:2:\\d+\\)`,
      ),
    );
  });
});

describe('ConstantRewardWatch', () => {
  it('warns once a source has scored every completion alike for N iterations, once per streak', () => {
    const w = new ConstantRewardWatch(3, { exact: 'Check its column' });
    const same = { exact: [0, 0, 0, 0], varied: [0, 1, 0, 1] };
    expect(w.observe(same)).toEqual([]);
    expect(w.observe(same)).toEqual([]);
    expect(w.observe(same)).toEqual([
      "reward 'exact' gave every completion the same reward (0) for 3 iterations in a row: its advantages are zero, so the policy learns nothing from it. Check its column",
    ]);
    expect(w.observe(same)).toEqual([]); // said once
    expect(w.observe({ exact: [0, 1, 0, 0] })).toEqual([]); // it varied: the streak ends
    for (let i = 0; i < 2; i++) expect(w.observe({ exact: [1, 1] })).toEqual([]);
    expect(w.observe({ exact: [1, 1] })).toHaveLength(1);
    // One completion is no evidence either way.
    const one = new ConstantRewardWatch(1);
    expect(one.observe({ x: [5] })).toEqual([]);
  });
});
