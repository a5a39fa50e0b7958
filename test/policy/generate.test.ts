import { beforeAll, describe, expect, it } from 'vitest';
import { leftPad } from '../../src/data/batching/collate.js';
import { logProbsFromLogits } from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { generate } from '../../src/policy/generate.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { nucleus, sampleToken } from '../../src/policy/sampling.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';

const FAMILIES = Object.keys(TINY) as (keyof typeof TINY)[];
/**
 * Families where a KV cache reproduces a full recomputation. Not dynamic NTK: its RoPE base grows
 * with the sequence, so keys cached at length n were rotated with the base of length n, as in
 * transformers (checked against transformers' own cached generation in families.test.ts).
 */
const CACHE_EXACT = FAMILIES.filter((f) => TINY[f].ropeScaling?.type !== 'dynamic');

/** Greedy decoding the slow way: the whole sequence through the model at every step, no cache. */
async function slowGreedy(model: CausalLM, prompt: number[], n: number): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const h = model.forward(leftPad([seq], 0));
    const lg = model.logits(h);
    const v = await read(lg);
    const V = model.config.vocabSize;
    const row = v.subarray((seq.length - 1) * V);
    let arg = 0;
    for (let j = 1; j < V; j++) if (row[j] > row[arg]) arg = j;
    seq.push(arg);
    tf.dispose([h, lg]);
  }
  return seq.slice(prompt.length);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`generate on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it.each(CACHE_EXACT)(
      '%s: greedy generation with the KV cache equals recomputing each step',
      async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 31));
        const prompts = randomRows(c, [6, 2, 4], 12);
        const out = await expectNoLeak(() =>
          generate(model, prompts, { maxNewTokens: 8, temperature: 0 }),
        );
        for (let b = 0; b < prompts.length; b++) {
          expect(out.responses[b], `row ${b}`).toEqual(await slowGreedy(model, prompts[b], 8));
        }
        model.dispose();
      },
    );

    it.each(CACHE_EXACT)(
      '%s: sampled log-probs equal the trainer’s recomputation log_softmax(z/T)',
      async (family) => {
        const c = TINY[family];
        const model = CausalLM.fromState(c, randomState(c, 32));
        const prompts = randomRows(c, [5, 3], 13);
        const rng = RandomStream.of({ seed: 1, step: 0, actor: 'policy', purpose: 'sample' });
        const T = 0.7;
        const g = await generate(model, prompts, { maxNewTokens: 6, temperature: T, rng });
        await expectNoLeak(async () => {
          const { sequences: s, promptLength: P } = g;
          const L = s.length;
          const lp = tf.tidy(() => {
            const scaled = tf.div(model.logits(model.forward(s)), T);
            // Position t predicts token t+1.
            const ids = tf.tensor2d(s.ids.slice(), [s.batch, L], 'int32');
            return logProbsFromLogits(
              tf.slice(scaled, [0, 0, 0], [s.batch, L - 1, c.vocabSize]),
              tf.slice(ids, [0, 1], [s.batch, L - 1]),
            );
          });
          const all = await read(lp);
          for (let b = 0; b < s.batch; b++) {
            const want = g.responses[b].map((_, i) => all[b * (L - 1) + P - 1 + i]);
            expectClose(g.logprobs[b], want, { atol: 2e-5, rtol: 1e-4, what: `row ${b}` });
          }
          lp.dispose();
        });
        model.dispose();
      },
    );
  });
}

describe('generate (cpu)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('lays out sequences as left-padded prompt + right-padded response, and stops on stop ids', async () => {
    const c = TINY.gpt2;
    const model = CausalLM.fromState(c, randomState(c, 40));
    const prompts = randomRows(c, [4, 2], 14);
    const free = await generate(model, prompts, { maxNewTokens: 5, temperature: 0 });
    const stop = free.responses[1][2]; // make row 1 stop at its third token
    const g = await generate(model, prompts, {
      maxNewTokens: 5,
      temperature: 0,
      stopTokenIds: [stop],
      padTokenId: 0,
    });
    const cut = free.responses[1].indexOf(stop) + 1;
    expect(g.responses[1]).toEqual(free.responses[1].slice(0, cut));
    expect(g.stopped[1]).toBe(true);
    const P = 4;
    const L = g.sequences.length;
    expect(g.promptLength).toBe(P);
    expect(L).toBe(P + Math.max(...g.responses.map((r) => r.length)));
    // Row 1: two pads, its prompt, its response, then padding.
    const row1 = [...g.sequences.ids.subarray(L, 2 * L)];
    expect(row1.slice(2, 4)).toEqual(prompts[1]);
    expect(row1.slice(P, P + cut)).toEqual(g.responses[1]);
    expect([...g.sequences.mask.subarray(L, 2 * L)]).toEqual([
      0,
      0,
      1,
      1,
      ...Array(cut).fill(1),
      ...Array(L - P - cut).fill(0),
    ]);
    expect([...g.actionMask.subarray(L, 2 * L)]).toEqual([
      0,
      0,
      0,
      0,
      ...Array(cut).fill(1),
      ...Array(L - P - cut).fill(0),
    ]);
    model.dispose();
  });

  it('is deterministic in its random stream, and top-k 1 is greedy', async () => {
    const c = TINY.llama;
    const model = CausalLM.fromState(c, randomState(c, 41));
    const prompts = randomRows(c, [3, 3], 15);
    const key = { seed: 9, step: 2, actor: 'policy', purpose: 'sample' };
    const a = await generate(model, prompts, { maxNewTokens: 6, rng: RandomStream.of(key) });
    const b = await generate(model, prompts, { maxNewTokens: 6, rng: RandomStream.of(key) });
    const other = await generate(model, prompts, {
      maxNewTokens: 6,
      rng: RandomStream.of({ ...key, step: 3 }),
    });
    expect(b.responses).toEqual(a.responses);
    expect(other.responses).not.toEqual(a.responses);
    const greedy = await generate(model, prompts, { maxNewTokens: 6, temperature: 0 });
    const k1 = await generate(model, prompts, {
      maxNewTokens: 6,
      topK: 1,
      rng: RandomStream.of(key),
    });
    expect(k1.responses).toEqual(greedy.responses);
    model.dispose();
  });

  it('rejects bad options with the field named', async () => {
    const model = CausalLM.init(TINY.gpt2, { seed: 1 });
    await expect(generate(model, [[1]], { maxNewTokens: 0, temperature: 0 })).rejects.toThrow(
      /'maxNewTokens' must be/,
    );
    await expect(generate(model, [[1]], { maxNewTokens: 2, topP: 0 })).rejects.toThrow(
      /'topP' must be in \(0, 1\]/,
    );
    await expect(generate(model, [[]], { maxNewTokens: 2, temperature: 0 })).rejects.toThrow(
      /prompt 0 is empty/,
    );
    await expect(generate(model, [[1]], { maxNewTokens: 2 })).rejects.toThrow(
      /needs a random stream/,
    );
    model.dispose();
  });
});

describe('sampleToken', () => {
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
  const freq = (opts: Parameters<typeof sampleToken>[1]) => {
    const rng = RandomStream.of({ seed: 3, step: 0, actor: 't' });
    const f = [0, 0, 0, 0];
    for (let i = 0; i < 20_000; i++) f[sampleToken(logits, opts, rng).token] += 1 / 20_000;
    return f;
  };

  it('samples the softmax at temperature 1 and reports log-probs before filtering', () => {
    const f = freq({});
    expectClose(f, [0.5, 0.3, 0.15, 0.05], { atol: 0.015, rtol: 0 });
    const rng = RandomStream.of({ seed: 3, step: 0, actor: 't' });
    const { token, logprob } = sampleToken(logits, { topK: 2 }, rng);
    expect(logprob).toBeCloseTo(logits[token], 10);
  });

  it('top-k keeps the k most likely, top-p the smallest set reaching p', () => {
    expectClose(freq({ topK: 2 }), [0.5 / 0.8, 0.3 / 0.8, 0, 0], { atol: 0.015, rtol: 0 });
    // 0.5 < 0.7 ≤ 0.5 + 0.3: the two most likely tokens.
    expectClose(freq({ topP: 0.7 }), [0.5 / 0.8, 0.3 / 0.8, 0, 0], { atol: 0.015, rtol: 0 });
    expectClose(freq({ topP: 0.5 }), [1, 0, 0, 0], { atol: 1e-9, rtol: 0 });
  });

  it('the top-k / top-p filter keeps what sorting every token keeps (ties, zeros, flat and peaked rows)', () => {
    /** The filter the slow way: sort all V by probability (ties: lower id), keep a prefix. */
    const slow = (e: Float64Array, total: number, k: number, p: number) => {
      const order = Array.from(e, (_, i) => i).sort((a, b) => e[b] - e[a] || a - b);
      const out = new Float64Array(e.length);
      let kept = 0;
      let mass = 0;
      while (kept < k && (kept === 0 || mass < p)) {
        const i = order[kept++];
        out[i] = e[i];
        mass += e[i] / total;
      }
      return out;
    };
    const rng = RandomStream.of({ seed: 5, step: 0, actor: 't', purpose: 'nucleus' });
    const rows: Float64Array[] = [];
    for (const spread of [0.01, 1, 4, 30]) {
      const z = rng.normal(500, 0, spread);
      const max = Math.max(...z);
      rows.push(Float64Array.from(z, (v) => Math.exp(v - max)));
    }
    rows.push(Float64Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? 0 : 1 + (i % 3)))); // ties, zeros
    rows.push(Float64Array.from({ length: 64 }, (_, i) => 2 ** -i)); // geometric: one pass each
    let checked = 0;
    for (const e of rows) {
      const total = e.reduce((a, b) => a + b, 0);
      for (const k of [1, 2, 17, e.length - 1, e.length])
        for (const p of [1e-6, 0.3, 0.9, 0.999, 1]) {
          expect([...nucleus(e, total, k, p)], `k ${k} p ${p}`).toEqual([...slow(e, total, k, p)]);
          checked++;
        }
    }
    expect(checked).toBe(150);
  });

  it('temperature sharpens: T = 0.5 samples softmax(2z)', () => {
    const p = [0.25, 0.09, 0.0225, 0.0025];
    const z = p.reduce((a, b) => a + b, 0);
    expectClose(
      freq({ temperature: 0.5 }),
      p.map((x) => x / z),
      { atol: 0.015, rtol: 0 },
    );
  });
});
