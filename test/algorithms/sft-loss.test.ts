import { beforeAll, describe, expect, it } from 'vitest';
import { collateSft, type SftItem, tokenizeSft } from '../../src/data/batching/index.js';
import { parseExample } from '../../src/data/datasets/formats.js';
import type { TokenizerLike } from '../../src/data/tokenizer/types.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/lm-loss.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomState, TINY } from '../policy/fixtures.js';

/**
 * SFT on prompt/completion rows puts its loss on the completion only (TRL's
 * completion_only_loss: the prompt's labels are -100, trl/trainer/sft_trainer.py): the loss is
 * the mean NLL of the completion tokens (and EOS), and a prompt token's own prediction carries
 * no weight, in the loss or in the gradients.
 */
const c = TINY.gpt2; // vocabulary of 23
const EOS = 22;

/** Letters a…v are ids 0…21, EOS is 22: every id is one character, so lengths are obvious. */
const tok: TokenizerLike = {
  vocabSize: 23,
  eosTokenId: EOS,
  encode: (text) => [...text].map((ch) => ch.charCodeAt(0) - 97),
  decode: (ids) => ids.map((i) => (i === EOS ? '</s>' : String.fromCharCode(97 + i))).join(''),
  tokenToId: () => undefined,
  idToToken: () => undefined,
};

const ROWS = [
  { prompt: 'abcdefg', completion: 'hij' },
  { prompt: 'klmn', completion: 'opqrs' },
];

function items(rows: readonly { prompt: string; completion: string }[]): SftItem[] {
  return rows.map((r) => tokenizeSft(tok, parseExample(r), { appendEos: true })!);
}

function batchOf(its: readonly SftItem[], allTargets = false) {
  const b = collateSft(
    allTargets
      ? its.map((it) => ({ ...it, lossMask: Uint8Array.from(it.ids, (_, i) => (i > 0 ? 1 : 0)) }))
      : its,
    { padId: EOS },
  );
  return { tokens: b.tokens, lossMask: b.lossMask };
}

/** The loss and the gradient of every parameter, as plain arrays. */
async function lossAndGrads(model: CausalLM, b: ReturnType<typeof batchOf>) {
  const names = [...model.params.keys()];
  const { value, grads } = tf.variableGrads(
    () => lmLoss(model, b.tokens, { lossMask: b.lossMask }).loss,
    names.map((n) => model.params.get(n)!),
  );
  const loss = (await read(value))[0];
  const g: Record<string, Float64Array> = {};
  for (const n of names) g[n] = await read(grads[model.params.get(n)!.name]);
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: g, names };
}

/** A prompt whose tokens but the last are changed: each of them is the target of the one before. */
const otherPrompts = ROWS.map((r) => ({
  prompt: `${[...r.prompt.slice(0, -1)].map((ch) => String.fromCharCode(((ch.charCodeAt(0) - 97 + 9) % 22) + 97)).join('')}${r.prompt.at(-1)}`,
  completion: r.completion,
}));

describe('SFT completion-only loss', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('the data: the loss mask is 1 on the completion and its EOS, 0 on every prompt token', () => {
    for (const [i, it] of items(ROWS).entries()) {
      const P = ROWS[i].prompt.length;
      const C = ROWS[i].completion.length + 1;
      expect([...it.lossMask]).toEqual([...Array(P).fill(0), ...Array(C).fill(1)]);
    }
  });

  it('equals the completion-only NLL computed by hand (float64 log-softmax of the logits)', async () => {
    const model = CausalLM.fromState(c, randomState(c, 31));
    await expectNoLeak(async () => {
      const b = batchOf(items(ROWS));
      const { loss, tokens } = lmLoss(model, b.tokens, { lossMask: b.lossMask });
      const got = (await read(loss))[0];
      const logits = tf.tidy(() => model.logits(model.forward(b.tokens)));
      const z = await read(logits);
      tf.dispose([loss, logits]);
      const { length: T } = b.tokens;
      const V = c.vocabSize;
      const nll = (completionOnly: boolean) => {
        let sum = 0;
        let n = 0;
        for (const [row, r] of ROWS.entries()) {
          const ids = [...tok.encode(r.prompt), ...tok.encode(r.completion), EOS];
          for (let t = completionOnly ? r.prompt.length : 1; t < ids.length; t++) {
            const zs = z.subarray((row * T + t - 1) * V, (row * T + t) * V); // predicts token t
            let m = Number.NEGATIVE_INFINITY;
            for (const v of zs) m = Math.max(m, v);
            let s = 0;
            for (const v of zs) s += Math.exp(v - m);
            sum -= zs[ids[t]] - m - Math.log(s);
            n++;
          }
        }
        return { mean: sum / n, n };
      };
      const want = nll(true);
      expect(tokens).toBe(want.n); // 3 + 1 and 5 + 1 completion targets
      expect(want.n).toBe(10);
      expect(Math.abs(got - want.mean)).toBeLessThan(1e-5);
      // The all-token NLL is another number: the check can tell them apart.
      expect(Math.abs(nll(false).mean - want.mean)).toBeGreaterThan(1e-2);
    });
    model.dispose();
  });

  it("changing the prompt tokens' targets moves neither the loss nor any gradient", async () => {
    // With attention silenced (v and o projections 0), position t sees only token t, so changing
    // prompt tokens 0…P−2 changes only the predictions whose targets are prompt tokens: exactly
    // what completion-only loss gives no weight. (Token P−1 is left: it predicts the completion.)
    const state = randomState(c, 32);
    for (let l = 0; l < c.layers; l++) {
      for (const n of ['attn.v.weight', 'attn.v.bias', 'attn.o.weight']) {
        state.get(`layers.${l}.${n}`)!.data.fill(0);
      }
    }
    const model = CausalLM.fromState(c, state);
    const a = await lossAndGrads(model, batchOf(items(ROWS)));
    const b = await lossAndGrads(model, batchOf(items(otherPrompts)));
    expect(otherPrompts.map((r) => r.prompt)).not.toEqual(ROWS.map((r) => r.prompt));
    expect(b.loss).toBe(a.loss);
    for (const n of a.names) expect(b.grads[n], n).toEqual(a.grads[n]);
    // The gradients compared are not zero (the silenced attention's are, but for o's bias).
    for (const n of [
      'embed.weight',
      'pos_embed.weight',
      'layers.1.mlp.up.weight',
      'final_norm.weight',
    ]) {
      expect(
        a.grads[n].some((v) => v !== 0),
        n,
      ).toBe(true);
    }
    // With every target counted (completionOnly: false) the same change moves the loss.
    const all = await lossAndGrads(model, batchOf(items(ROWS), true));
    const allOther = await lossAndGrads(model, batchOf(items(otherPrompts), true));
    expect(Math.abs(allOther.loss - all.loss)).toBeGreaterThan(1e-3);
    model.dispose();
  });
});
