import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainRl } from '../../src/algorithms/rl.js';
import { CRASHING_POLICY } from './fixtures/crashing-policy.js';
import { finalCheckpointFile, runMetrics, tinyRlConfig } from './fixtures/tiny-rl.js';

/**
 * A learner that dies between steps is not restarted from its start weights (it would train on
 * from them, silently): the run stops with an error naming the actor and saying to resume, and
 * the resume continues it exactly. The tiny GRPO job of the resume tests (fixtures/tiny-rl.ts).
 */
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-rl-crash-'));

describe('a learner that crashes while idle', () => {
  it('stops the run (no restart from the start weights) with an error that says to --resume, and the resume equals the uninterrupted run', async () => {
    const marker = join(tmp(), 'crashed');
    const straight = tmp();
    const crashed = tmp();
    process.env.TROUPE_TEST_POLICY_CRASH_MARKER = marker;
    try {
      const e = await trainRl(await tinyRlConfig('grpo', crashed), {
        roles: { policy: CRASHING_POLICY },
      }).catch((x: unknown) => x);
      expect(existsSync(marker)).toBe(true); // it died after step 2's checkpoint
      expect(e).toMatchObject({ code: 'ACTOR_CRASHED', details: { restarted: false } });
      expect((e as Error).message).toMatch(
        /^Actor thread 'policy' died \(exit code 1\)\. It is not restarted: 'policy' holds what it has trained .*--resume/,
      );
      const log = readFileSync(join(crashed, 'log.txt'), 'utf8');
      expect(log).not.toMatch(/actor 'policy' restarted/);
    } finally {
      delete process.env.TROUPE_TEST_POLICY_CRASH_MARKER;
    }
    // Steps 1 and 2 trained; the resume continues from step 2's checkpoint.
    const train = (dir: string) => runMetrics(dir).filter((r) => r.split === 'train');
    expect(train(crashed).map((r) => r.step)).toEqual([1, 2]);
    const resumed = await trainRl(await tinyRlConfig('grpo', crashed), { resume: true });
    expect(resumed.steps).toBe(4);
    await trainRl(await tinyRlConfig('grpo', straight));
    expect(train(crashed).map((r) => r.step)).toEqual([1, 2, 3, 4]);
    expect(runMetrics(crashed)).toEqual(runMetrics(straight));
    const weights = (dir: string) => finalCheckpointFile(dir, 'model.safetensors');
    expect(weights(crashed).equals(weights(straight))).toBe(true);
  }, 240_000);
});
