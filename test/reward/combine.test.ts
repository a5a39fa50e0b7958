import { describe, expect, it } from 'vitest';
import { functionSource, lengthPenalty, regexReward, weightedSum } from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

describe('weightedSum', () => {
  const format = regexReward({ name: 'format', pattern: '^<a>' }); // 1 / 0
  const length = lengthPenalty({ target: 4, scale: 1 }); // −|len − 4| / 4
  const batch = batchOf(['<a>x', 'abcdefgh', '<a>']);

  it('is Σ w·s, and reports each unweighted part by name', async () => {
    const s = weightedSum([
      { source: format, weight: 2 },
      { source: length, weight: 0.5 },
    ]);
    const { total, parts } = await s.scoreDetailed(batch);
    // format [1, 0, 1]; length [0, −1, −0.25]
    expect([...parts.format]).toEqual([1, 0, 1]);
    expect([...parts.length]).toEqual([-0, -1, -0.25]);
    expect([...total]).toEqual([2, -0.5, 2 - 0.125]);
    expect([...(await s.score(batch))]).toEqual([...total]);
    expect(s.name).toBe('weighted-sum');
  });

  it('fails with the name of a bad part', async () => {
    const bad = functionSource('bad', ({ completions }) => completions.map(() => Number.NaN));
    const s = weightedSum([
      { source: format, weight: 1 },
      { source: bad, weight: 1 },
    ]);
    await expect(s.score(batch)).rejects.toThrow("reward 'bad': row 0 is NaN");
  });

  it('refuses no parts, bad weights and duplicate names', () => {
    expect(() => weightedSum([])).toThrow("weightedSum 'weighted-sum': needs at least one part");
    expect(() => weightedSum([{ source: format, weight: Number.NaN }])).toThrow(
      "weightedSum 'weighted-sum': part 0 ('format') 'weight' must be a finite number, got NaN",
    );
    expect(() =>
      weightedSum([
        { source: format, weight: 1 },
        { source: format, weight: 2 },
      ]),
    ).toThrow(/two parts are named 'format'/);
  });
});
