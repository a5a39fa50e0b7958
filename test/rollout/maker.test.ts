import { describe, expect, it } from 'vitest';
import { rewardBatchOf } from '../../src/rollout/maker.js';

describe('rewardBatchOf', () => {
  it('pairs each response with its prompt (n per prompt), drops a trailing EOS, fills columns', () => {
    const prompts = [
      { ids: [1], text: '1+1=', columns: { answer: '2' } },
      { ids: [2], text: '2+2=', columns: { answer: '4', tag: 'x' } },
    ];
    const decode = (ids: readonly number[]) => ids.map((i) => String.fromCharCode(96 + i)).join('');
    const batch = rewardBatchOf(
      prompts,
      { responses: [[1, 0], [2], [3, 0, 4], [0]] },
      { samplesPerPrompt: 2, decode, eosTokenId: 0 },
    );
    expect(batch.prompts).toEqual(['1+1=', '1+1=', '2+2=', '2+2=']);
    // Only a trailing EOS is dropped (id 0 inside a response stays, decoded as '`').
    expect(batch.completions).toEqual(['a', 'b', 'c`d', '']);
    expect(batch.columns).toEqual({ answer: ['2', '2', '4', '4'], tag: [null, null, 'x', 'x'] });
  });
});
