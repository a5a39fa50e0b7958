import { describe, expect, it } from 'vitest';
import { layoutOf } from '../../src/rollout/assemble.js';
import { encodeRollout } from '../../src/rollout/codec.js';
import { makeExperience, rewardBatchOf } from '../../src/rollout/maker.js';

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

describe('makeExperience', () => {
  // Two rows of prompt width 2 and 3 action columns: row 0 took 3 actions, row 1 took 1.
  const layout = layoutOf({
    sequences: {
      ids: Int32Array.from([1, 2, 7, 8, 9, 0, 3, 6, 0, 0]),
      mask: Uint8Array.from([1, 1, 1, 1, 1, 0, 1, 1, 0, 0]),
      batch: 2,
      length: 5,
    },
    actionMask: Uint8Array.from([0, 0, 1, 1, 1, 0, 0, 1, 0, 0]),
    promptLength: 2,
  });
  const generated = {
    frame: encodeRollout(layout),
    responses: [[7, 8, 9], [6]],
    logprobs: [[-0.5, -1.25, -2], [-0.75]],
    stopped: [false, true],
  };
  const prompts = [
    { ids: [1, 2], text: 'a', columns: {} },
    { ids: [3], text: 'b', columns: {} },
  ];
  const reward = async () => ({ total: Float32Array.from([1, 0]), parts: {} });
  const maker = { samplesPerPrompt: 1, decode: (ids: readonly number[]) => ids.join(' ') };
  const params = { estimator: 'reinforce_plus_plus', klCoef: 0, klEstimator: 'k1' } as const;

  it('without a policy scorer, π_old is the generator’s log-prob of each action (0 off the mask), and no pass is timed', async () => {
    const made = await makeExperience(prompts, generated, { reward }, params, maker);
    expect([...made.experience.actionLogProbs]).toEqual([-0.5, -1.25, -2, -0.75, 0, 0]);
    expect(made.seconds.logprobs).toBe(0);
    // Entropy and the generator/policy mismatch are the update's to report then.
    expect(Object.keys(made.metrics)).toEqual(['rollout/stopped']);
    expect(made.metrics['rollout/stopped']).toBe(0.5);
  });

  it('with one, π_old and the metrics are the policy pass’s', async () => {
    const policy = async () => ({
      logp: Float32Array.from([-0.5, -1, -2, -1, 0, 0]),
      entropy: Float32Array.from([1, 2, 3, 4, 9, 9]),
    });
    const made = await makeExperience(prompts, generated, { reward, policy }, params, maker);
    expect([...made.experience.actionLogProbs]).toEqual([-0.5, -1, -2, -1, 0, 0]);
    expect(made.metrics['actor/entropy']).toBe((1 + 2 + 3 + 4) / 4);
    expect(made.metrics['rollout/logprob_diff']).toBe((0 + 0.25 + 0 + 0.25) / 4);
  });
});
