import { afterAll, describe, expect, it } from 'vitest';
import { TaskPool } from '../../src/actors/pool.js';
import type { TroupeError } from '../../src/errors.js';
import { moduleSource, rewardFromSpec } from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

const EXAMPLE = new URL('../../examples/rewards/keyword-reward.mjs', import.meta.url);
const FIXTURES = new URL('./fixtures/user-rewards.mjs', import.meta.url);
const pool = new TaskPool({ name: 'rewards', maxThreads: 2 });

afterAll(async () => {
  await pool.destroy();
});

describe('moduleSource (a user module in a real TaskPool)', () => {
  it('runs the example keyword reward on prompts, completions and columns', async () => {
    const s = moduleSource('keywords', EXAMPLE, 'default', { pool, timeoutMs: 20_000 });
    const batch = batchOf(['The Cat sat on the mat', 'a dog', 'nothing'], {
      keywords: [['cat', 'mat'], ['dog', 'bone', 'walk', 'park'], []],
    });
    expect([...(await s.score(batch))]).toEqual([1, 0.25, 0]);
  });

  it('passes every column by name, from a path as well as a URL', async () => {
    const s = rewardFromSpec(
      { type: 'module', name: 'echo', path: FIXTURES.pathname, exportName: 'echoColumns' },
      { pool },
    );
    const out = await s.score(batchOf(['ab', 'c'], { bonus: [10, 20] }, ['x', 'yy']));
    expect([...out]).toEqual([13, 23]);
  });

  it('times out a module that hangs, naming the source', async () => {
    const s = moduleSource('stuck', FIXTURES, 'hang', { pool, timeoutMs: 300 });
    const e = (await s.score(batchOf(['a'])).catch((x: unknown) => x)) as TroupeError;
    expect(e).toMatchObject({ code: 'TASK_TIMEOUT' });
    expect(e.message).toBe(
      "reward 'stuck': rewards: task reward 'stuck' did not finish within 300 ms",
    );
  });

  it('wraps a module that throws, keeping the cause chain and the line it threw at', async () => {
    const s = moduleSource('judge', FIXTURES, 'throws', { pool, timeoutMs: 20_000 });
    const e = (await s.score(batchOf(['a'])).catch((x: unknown) => x)) as TroupeError;
    expect(e).toMatchObject({ code: 'TASK_FAILED' });
    expect(e.message).toMatch(
      /^reward 'judge': .*Error: cannot reach the judge \(at .*user-rewards\.mjs:11:9\)$/,
    );
    // source → pool task → where in the module → the module's own error.
    const where = (e.cause as Error).cause as TroupeError;
    expect(where.details).toMatchObject({
      where: expect.stringMatching(/user-rewards\.mjs:11:9$/),
    });
    expect((where.cause as Error).message).toBe('cannot reach the judge');
  });

  it('checks what the module returns (NaN), and names a missing export', async () => {
    const nan = moduleSource('nan', FIXTURES, 'nan', { pool });
    await expect(nan.score(batchOf(['a', 'b', 'c']))).rejects.toMatchObject({
      code: 'BAD_REWARD',
      message: "reward 'nan': row 1 is NaN",
    });
    const missing = moduleSource('missing', FIXTURES, 'nope', { pool });
    await expect(missing.score(batchOf(['a']))).rejects.toThrow(
      /has no function export 'nope' \(exports: echoColumns, hang, nan, throws\)/,
    );
  });

  it('refuses bad options', () => {
    expect(() => moduleSource('x', EXAMPLE, 'default', {} as never)).toThrow(
      "moduleSource 'x': option 'pool' is required",
    );
    expect(() => moduleSource('x', EXAMPLE, 'default', { pool, timeoutMs: -1 })).toThrow(
      /option 'timeoutMs' must be a number ≥ 0/,
    );
  });
});
