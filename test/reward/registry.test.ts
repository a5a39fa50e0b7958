import { describe, expect, it } from 'vitest';
import { REWARD_BUILTINS, rewardFromSpec } from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

describe('rewardFromSpec', () => {
  it('builds each built-in from config data', async () => {
    const batch = batchOf(['#### 42', 'good'], { answer: ['42', '0'] });
    const exact = rewardFromSpec({ type: 'exact-match', normalize: 'numeric' });
    expect([...(await exact.score(batch))]).toEqual([1, 0]);
    const regex = rewardFromSpec({ type: 'regex', pattern: '^####', penalty: -1 });
    expect([...(await regex.score(batch))]).toEqual([1, -1]);
    const length = rewardFromSpec({ type: 'length', target: 4 });
    expect([...(await length.score(batch))]).toEqual([-0.75, -0]);
    const sentiment = rewardFromSpec({ type: 'sentiment', normalize: 'none' });
    expect([...(await sentiment.score(batch))]).toEqual([0, 3]);
    const http = rewardFromSpec({ type: 'http', name: 'judge', url: 'http://127.0.0.1:1/' });
    expect(http.name).toBe('judge');
  });

  it('lists the known types for an unknown one', () => {
    expect([...REWARD_BUILTINS.keys()]).toEqual([
      'exact-match',
      'regex',
      'length',
      'sentiment',
      'module',
      'http',
      'model',
    ]);
    expect(() => rewardFromSpec({ type: 'bleu' })).toThrow(
      "Unknown reward type 'bleu'. Known: exact-match, regex, length, sentiment, module, http, model.",
    );
    expect(() => rewardFromSpec({} as never)).toThrow(/needs a 'type'/);
  });

  it('passes option errors through, and needs a pool for a module', () => {
    expect(() => rewardFromSpec({ type: 'regex', pattern: '[' })).toThrow(
      /regexReward option 'pattern': invalid regular expression/,
    );
    expect(() => rewardFromSpec({ type: 'module', path: 'x.mjs' })).toThrow(
      "module reward 'x.mjs': needs a TaskPool in the context",
    );
    expect(() => rewardFromSpec({ type: 'module', file: 'x.mjs' })).toThrow(
      "module reward: unknown option 'file'. Known: name, path, exportName, timeoutMs.",
    );
  });
});
