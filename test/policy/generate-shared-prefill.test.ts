import { beforeAll, describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/config.js';
import { distinctRows, generate } from '../../src/policy/generate.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import { BACKEND_CASES, expectNoLeak, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';

describe('distinctRows', () => {
  it('keeps the first appearance of each prompt and maps every row to it', () => {
    const { distinct, index } = distinctRows([[1, 2], [3], [1, 2], [3], [1, 2, 0]]);
    expect(distinct).toEqual([[1, 2], [3], [1, 2, 0]]);
    expect([...index]).toEqual([0, 1, 0, 1, 2]);
  });
});

/** n samples of each of `prompts`, in GRPO's order (a prompt's samples together). */
const repeated = (prompts: number[][], n: number) => prompts.flatMap((p) => Array(n).fill(p));

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`shared prefill on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(['gpt2', 'llama'] as const)(
      '%s: prompts shared by several samples, prefilled once, sample the same tokens and log-probs bit for bit',
      async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 7));
        // Lengths 9, 12 and 5, four samples each, mixed with a prompt of its own: 10 distinct-row
        // tokens past SMALL_PREFILL_ROWS, as the full batch's are.
        const prompts = [...repeated(randomRows(c, [9, 12, 5], 3), 4), ...randomRows(c, [7], 4)];
        const prefillRows: number[] = [];
        const forward = model.forward.bind(model);
        model.forward = (batch, opts) => {
          if (opts?.cache?.length === 0) prefillRows.push(batch.batch);
          return forward(batch, opts);
        };
        const run = (sharePrefill: boolean) =>
          expectNoLeak(() =>
            generate(model, prompts, {
              maxNewTokens: 6,
              temperature: 1,
              rng: RandomStream.of({ seed: 5, step: 1, actor: 'generator', purpose: 'sample' }),
              sharePrefill,
            }),
          );
        const shared = await run(true);
        const each = await run(false);
        expect(prefillRows).toEqual([4, 13]); // shared: one row per distinct prompt
        expect(shared.responses).toEqual(each.responses);
        expect(shared.logprobs).toEqual(each.logprobs); // exact: the same bits
        expect(shared.stopped).toEqual(each.stopped);
        expect([...shared.sequences.ids]).toEqual([...each.sequences.ids]);
        // Samples of one prompt draw different tokens (the draws are not shared).
        expect(shared.responses[0]).not.toEqual(shared.responses[1]);
        model.dispose();
      },
    );
  });
}

describe('KVCache.expand', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('copies the keys, values, mask and counts of the rows it is given (tensor store)', async () => {
    const c = gpt2Config({ vocabSize: 11, hidden: 8, layers: 1, heads: 2, maxPositions: 16 });
    const model = CausalLM.init(c, { seed: 3 });
    const cache = new KVCache(2, { store: 'tensors' });
    const h = model.forward(
      {
        ids: Int32Array.from([0, 4, 5, 6, 7, 8]),
        mask: Uint8Array.from([0, 1, 1, 1, 1, 1]),
        batch: 2,
        length: 3,
      },
      { cache },
    );
    h.dispose();
    const grown = cache.expand([1, 0, 1]);
    expect(grown.batch).toBe(3);
    expect(grown.length).toBe(3);
    expect([...grown.seen]).toEqual([3, 2, 3]);
    expect([...grown.keyMaskWith(new Uint8Array(3), 0)]).toEqual([1, 1, 1, 0, 1, 1, 1, 1, 1]);
    const [k0, k1] = [cache.layer(0)!.k, grown.layer(0)!.k];
    const a = (await k0.array()) as number[][][][];
    const b = (await k1.array()) as number[][][][];
    expect(b).toEqual([a[1], a[0], a[1]]);
    expect(() => cache.expand([2])).toThrow(/row 2 \(at 0\) is not in 0\.\.1/);
    cache.dispose();
    grown.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0);
  });
});
