import { afterAll, describe, expect, it } from 'vitest';
import { TaskPool } from '../../src/actors/pool.js';
import { TroupeError } from '../../src/errors.js';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url);
const pool = new TaskPool({ name: 'rewards', maxThreads: 2 });

afterAll(async () => {
  await pool.destroy();
});

describe('TaskPool (piscina, real threads)', () => {
  it('runs a named function from a module on its input', async () => {
    const out = await pool.run<number[]>(TASKS, 'lengthReward', {
      completions: ['abc', 'abcdefghij'],
    });
    expect(out).toEqual([0.3, 1]);
  });

  it('returns a task error with its code and cause, naming the task', async () => {
    const e = await pool
      .run(TASKS, 'failing', { why: 'no answer' }, { task: "reward 'exact'" })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TroupeError);
    expect(e).toMatchObject({
      code: 'TASK_FAILED',
      details: { pool: 'rewards', task: "reward 'exact'" },
    });
    expect((e as Error).message).toBe(
      "rewards: task reward 'exact' failed: reward cannot score: no answer",
    );
    const inner = (e as Error).cause as TroupeError;
    expect(inner).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect((inner.cause as Error | undefined)?.message).toBe('root cause');
  });

  it('times out a task that runs too long, and keeps working afterwards', async () => {
    const e = await pool
      .run(TASKS, 'spin', { ms: 60_000 }, { timeoutMs: 300, task: 'spin' })
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'TASK_TIMEOUT' });
    expect((e as Error).message).toBe('rewards: task spin did not finish within 300 ms');
    expect(await pool.run(TASKS, 'lengthReward', { completions: ['x'] })).toEqual([0.1]);
  });

  it('cancels a running task with an AbortSignal, and refuses one already aborted', async () => {
    const ac = new AbortController();
    const p = pool.run(TASKS, 'spin', { ms: 60_000 }, { signal: ac.signal, task: 'long' });
    setTimeout(() => ac.abort(), 200);
    await expect(p).rejects.toMatchObject({ code: 'TASK_ABORTED' });
    await expect(
      pool.run(TASKS, 'spin', { ms: 1 }, { signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({
      code: 'TASK_ABORTED',
    });
  });

  it('names a missing export', async () => {
    await expect(pool.run(TASKS, 'nope', {})).rejects.toThrow(/has no function export 'nope'/);
  });
});
