import { describe, expect, it } from 'vitest';
import { TroupeError } from '../../src/errors.js';
import { checkRewards, functionSource } from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

const batch = batchOf(['a', 'b', 'c', 'd']);
const src = { name: 'length' };

describe('checkRewards', () => {
  it('returns a Float32Array of the values', () => {
    const out = checkRewards(src, batch, [1, -2, 0.5, 0]);
    expect(out).toBeInstanceOf(Float32Array);
    expect([...out]).toEqual([1, -2, 0.5, 0]);
  });

  it.each([
    [[1, 2, 3, Number.NaN], "reward 'length': row 3 is NaN"],
    [[1, Number.POSITIVE_INFINITY, 3, 4], "reward 'length': row 1 is Infinity"],
    [[1, 2, Number.NEGATIVE_INFINITY, 4], "reward 'length': row 2 is -Infinity"],
    [[1, '2', 3, 4], `reward 'length': row 1 is a string ("2"), not a number`],
    [[null, 2, 3, 4], "reward 'length': row 0 is null, not a number"],
    [[1, 2, true, 4], "reward 'length': row 2 is a boolean (true), not a number"],
    [[1, 2, 3, undefined], "reward 'length': row 3 is undefined, not a number"],
    [[1, 2, 3], "reward 'length': returned 3 rewards for a batch of 4 rows"],
    [{ rewards: [1] }, "reward 'length': expected an array of 4 numbers, got an object"],
    [undefined, "reward 'length': expected an array of 4 numbers, got undefined"],
  ])('refuses %j', (values, message) => {
    let e: unknown;
    try {
      checkRewards(src, batch, values);
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(TroupeError);
    expect(e).toMatchObject({ code: 'BAD_REWARD', message });
  });

  it('names the first bad row in details', () => {
    expect(() => checkRewards(src, batch, [1, Number.NaN, Number.NaN, 1])).toThrow(
      expect.objectContaining({ details: { source: 'length', row: 1, value: Number.NaN } }),
    );
  });
});

describe('every source goes through the check', () => {
  it('wraps a throwing source with its name and keeps the cause', async () => {
    const boom = new Error('judge offline');
    const s = functionSource('judge', () => {
      throw boom;
    });
    const e = (await s.score(batch).catch((x: unknown) => x)) as TroupeError;
    expect(e).toMatchObject({ code: 'BAD_REWARD', message: "reward 'judge': judge offline" });
    expect(e.cause).toBe(boom);
  });

  it('keeps the code of a TroupeError it wraps', async () => {
    const s = functionSource('slow', () => {
      throw new TroupeError('TASK_TIMEOUT', 'too slow');
    });
    await expect(s.score(batch)).rejects.toMatchObject({
      code: 'TASK_TIMEOUT',
      message: "reward 'slow': too slow",
    });
  });

  it('checks what a function returns', async () => {
    const s = functionSource('short', ({ completions }) => completions.slice(1).map(() => 1));
    await expect(s.score(batch)).rejects.toMatchObject({
      code: 'BAD_REWARD',
      message: "reward 'short': returned 3 rewards for a batch of 4 rows",
    });
    const ok = functionSource('ok', ({ completions }) => completions.map((c) => c.charCodeAt(0)));
    expect([...(await ok.score(batch))]).toEqual([97, 98, 99, 100]);
  });

  it('passes columns, prompts and completions to a function', async () => {
    const s = functionSource('cols', ({ prompts, completions, bonus }) =>
      completions.map((c, i) => prompts[i].length + c.length + (bonus[i] as number)),
    );
    const out = await s.score(batchOf(['ab', 'c'], { bonus: [10, 20] }, ['x', 'yy']));
    expect([...out]).toEqual([13, 23]);
  });
});
