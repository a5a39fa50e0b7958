import { beforeAll, describe, expect, it } from 'vitest';
import { actionLogProbs } from '../../src/algorithms/roles/logprobs.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { generate } from '../../src/policy/generate.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { layoutOf } from '../../src/rollout/assemble.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from '../policy/fixtures.js';

/**
 * The RL learner's log π(a | s) at temperature τ (and its entropy) against the plain recipe:
 * log-softmax(z/τ) of the full logits, z soft-capped where the model caps them (Gemma 2), and
 * against the generator's own log-probs of the tokens it sampled.
 */
describe('actionLogProbs', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each(['gpt2', 'gemma2', 'phi3'] as const)(
    '%s: equals log-softmax(z/τ) of the sampled tokens, and the generator’s log-probs',
    async (family) => {
      const c = TINY[family];
      const model = CausalLM.fromState(c, randomState(c, 90));
      const T = 0.8;
      const prompts = randomRows(c, [4, 2, 3], 91);
      const rng = RandomStream.of({ seed: 2, step: 0, actor: 'gen', purpose: 'sample' });
      const g = await generate(model, prompts, { maxNewTokens: 4, temperature: T, rng });
      const layout = layoutOf(g);
      const { batch: B, length: L, actions: A } = layout.shape;
      const P = layout.promptLength;
      await expectNoLeak(async () => {
        const { logp, entropy } = tf.tidy(() =>
          actionLogProbs(model, layout, { temperature: T, entropy: true }),
        );
        const got = await read(logp);
        const ent = await read(entropy!);
        const logits = tf.tidy(() =>
          tf.div(
            model.logits(
              model.forward({
                ids: layout.sequences,
                mask: layout.attentionMask,
                batch: B,
                length: L,
              }),
            ),
            T,
          ),
        );
        const z = await read(logits);
        const V = c.vocabSize;
        const want: number[] = [];
        const wantEnt: number[] = [];
        const fromGenerator: number[] = [];
        const mine: number[] = [];
        for (let b = 0; b < B; b++) {
          for (let a = 0; a < A; a++) {
            const row = z.subarray((b * L + P - 1 + a) * V, (b * L + P + a) * V);
            const m = Math.max(...row);
            const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
            want.push(row[layout.sequences[b * L + P + a]] - lse);
            wantEnt.push(-row.reduce((s, v) => s + Math.exp(v - lse) * (v - lse), 0));
            if (layout.actionMask[b * A + a]) {
              fromGenerator.push(g.logprobs[b][a]);
              mine.push(got[b * A + a]);
            }
          }
        }
        expectClose(got, want, { atol: 2e-5, rtol: 1e-4, what: 'log π' });
        expectClose(ent, wantEnt, { atol: 2e-5, rtol: 1e-4, what: 'entropy' });
        expectClose(mine, fromGenerator, { atol: 1e-4, rtol: 1e-4, what: 'generator log π' });
        expect(mine.length).toBeGreaterThan(0);
        tf.dispose([logp, entropy!, logits]);
      });
      model.dispose();
    },
  );
});
