import { beforeAll, describe, expect, it } from 'vitest';
import type { ActorContext } from '../../src/actors/role.js';
import {
  generateSpread,
  groupRanges,
  referenceLogprobs,
  scoreSpread,
} from '../../src/algorithms/rl/spread.js';
import { createGenerator } from '../../src/algorithms/roles/generator.js';
import { holdModel } from '../../src/algorithms/roles/in-thread.js';
import { createReference } from '../../src/algorithms/roles/reference.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import { gpt2Config } from '../../src/policy/config.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { decodeRollout } from '../../src/rollout/codec.js';
import { nativeSkip } from '../helpers/native.js';
import { expectRowsEqual, rowsIndependent } from '../helpers/row-order.js';

/*
 * One batch spread over the instances of an actor that sit beside each policy replica (veRL's
 * hybrid engine): whole prompt groups per instance, and the joined result what one instance
 * gives for the whole batch.
 */

const config = gpt2Config({ vocabSize: 29, hidden: 16, layers: 2, heads: 4, maxPositions: 96 });

const ctx = (name: string): ActorContext => ({
  name,
  runtime: { backend: 'wasm', device: 'cpu', reason: 'test' } as ActorContext['runtime'],
  log: () => {},
  metric: () => {},
});

/** `groups` prompts of 32 tokens (a fixed xorshift stream), each repeated `n` times. */
function prompts(groups: number): number[][] {
  let s = 11;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return 1 + ((s >>> 0) % (config.vocabSize - 1));
  };
  return Array.from({ length: groups }, () => Array.from({ length: 32 }, next));
}

describe('groupRanges', () => {
  it.each([
    [
      8,
      8,
      2,
      [
        [0, 32],
        [32, 64],
      ],
    ],
    [
      3,
      4,
      2,
      [
        [0, 4],
        [4, 12],
      ],
    ],
    [
      5,
      1,
      3,
      [
        [0, 1],
        [1, 3],
        [3, 5],
      ],
    ],
    [1, 8, 2, [undefined, [0, 8]]],
  ])('%i groups of %i over %i instances: %j', (groups, n, parts, want) => {
    expect(groupRanges(groups, n, parts)).toEqual(want);
  });
});

describe.skipIf(nativeSkip !== null)(
  'spreading a batch over instances (wasm, native kernels)',
  () => {
    beforeAll(async () => {
      await startRuntime({ backend: 'wasm' });
    });

    it('generates each instance its prompt groups and joins them as one generator lays the rows out', async () => {
      const model = CausalLM.init(config, { seed: 3 });
      holdModel('policy', model);
      const g0 = await createGenerator({ sharesWith: 'policy' }, ctx('generator/0'));
      const g1 = await createGenerator({ sharesWith: 'policy' }, ctx('generator/1'));
      const ps = prompts(4);
      const n = 8;
      // greedy: what a row samples depends on its own tokens alone
      const opts = { maxNewTokens: 32, temperature: 0, stopTokenIds: [5], padTokenId: 0 };
      const whole = await g0.generate(
        ps.flatMap((p) => Array.from({ length: n }, () => p)),
        opts,
      );
      const spread = await generateSpread([{ call: g0 }, { call: g1 }], ps, n, opts);
      expect(spread.responses).toEqual(whole.responses);
      expect(spread.stopped).toEqual(whole.stopped);
      expect(spread.version).toBe(whole.version);
      expect(decodeRollout(spread.frame)).toEqual(decodeRollout(whole.frame));
      // log-probs to float32 rounding (the instances' products have half the rows)
      for (const [r, row] of spread.logprobs.entries()) {
        for (const [t, x] of row.entries()) expect(x).toBeCloseTo(whole.logprobs[r][t], 5);
      }
      model.dispose();
    }, 60_000);

    it('samples each instance with its own random stream: the instances draw independently', async () => {
      const model = CausalLM.init(config, { seed: 4 });
      holdModel('policy', model);
      const g = await createGenerator({ sharesWith: 'policy' }, ctx('generator/0'));
      const ps = prompts(2);
      const same = [ps[0], ps[0]]; // one prompt in both halves
      const sampling = { seed: 1, step: 0, actor: 'generator', purpose: 'sample' };
      const opts = { maxNewTokens: 16, temperature: 1, padTokenId: 0, sampling };
      const spread = await generateSpread([{ call: g }, { call: g }], same, 4, opts);
      // the same prompt, two streams: the halves' first rows differ
      expect(spread.responses[4]).not.toEqual(spread.responses[0]);
      // and each half is what its instance's stream draws (generator/r)
      const half = await g.generate(Array(4).fill(ps[0]), {
        ...opts,
        sampling: { ...sampling, actor: 'generator/1' },
      });
      expect(spread.responses.slice(4)).toEqual(half.responses);
      model.dispose();
    }, 60_000);

    it(`scores each reference instance its groups: the log-probs of one reference, ${rowsIndependent ? 'bit for bit' : 'to float32 rounding (rows not independent in this BLAS)'}`, async () => {
      const model = CausalLM.init(config, { seed: 5 });
      holdModel('policy', model);
      const g = await createGenerator({ sharesWith: 'policy' }, ctx('generator'));
      const rollout = await g.generate(
        prompts(4).flatMap((p) => Array.from({ length: 8 }, () => p)),
        { maxNewTokens: 32, temperature: 0, padTokenId: 0 },
      );
      const ref = await createReference({ model: { config, seed: 6 } }, ctx('reference'));
      const whole = await ref.actionLogprobs(rollout.frame);
      const spread = await referenceLogprobs([{ call: ref }, { call: ref }], rollout.frame, 8);
      expectRowsEqual(spread, whole, 'spread over groups');
      // rows not in whole groups (an eval batch) are spread row by row
      const rows = await referenceLogprobs(
        [{ call: ref }, { call: ref }, { call: ref }],
        rollout.frame,
        5,
      );
      expectRowsEqual(rows, whole, 'spread row by row');
      // several outputs (π_old's log-probs and entropies), each joined in row order
      const two = await scoreSpread(rollout.frame, 2, 8, async (i, part) => {
        const lp = await ref.actionLogprobs(part);
        return [lp, lp.map((x) => x * 2 + i)];
      });
      expectRowsEqual(two[0], whole, 'first output');
      const half = whole.length / 2;
      expect(two[1].subarray(0, half)).toEqual(two[0].subarray(0, half).map((x) => x * 2));
      expect(two[1].subarray(half)).toEqual(two[0].subarray(half).map((x) => x * 2 + 1));
      ref.dispose();
      model.dispose();
    }, 60_000);
  },
);
