import { beforeAll, describe, expect, it } from 'vitest';
import { rightPad } from '../../src/data/batching/collate.js';
import { entropyFromLogits } from '../../src/kernels/numerics/index.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { logpAndEntropy, targetLogProbs } from '../../src/policy/target-logprobs.js';
import { expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { randomRows, randomState, TINY } from './fixtures.js';

/*
 * With the entropy asked for, targetLogProbs computes the [N, V] logits once and takes both the
 * log-probs and the entropy from one log-softmax (logpAndEntropy). Checked against a float64
 * plain loop (values and the gradient of a random weighting of both) and against the path it
 * replaced: the chunked head's log-probs plus a second head pass through entropyFromLogits.
 */

/** Float64 log π(label), H and ∂(Σ a·lp + b·H)/∂z of [N, V] logits. */
function reference64(z: Float64Array, labels: Int32Array, a: Float64Array, b: Float64Array) {
  const N = labels.length;
  const V = z.length / N;
  const lp = new Float64Array(N);
  const H = new Float64Array(N);
  const dz = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    const row = z.subarray(r * V, (r + 1) * V);
    let m = -Infinity;
    for (const v of row) m = Math.max(m, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    const lse = m + Math.log(s);
    for (let v = 0; v < V; v++) H[r] -= Math.exp(row[v] - lse) * (row[v] - lse);
    lp[r] = row[labels[r]] - lse;
    for (let v = 0; v < V; v++) {
      const q = row[v] - lse;
      const p = Math.exp(q);
      dz[r * V + v] = a[r] * ((v === labels[r] ? 1 : 0) - p) - b[r] * p * (q + H[r]);
    }
  }
  return { lp, H, dz };
}

const uniform = (seed: number, n: number, lo: number, hi: number) => {
  const u = RandomStream.of({ seed, step: 0, actor: 'test', purpose: 'logp-entropy' }).uniform(n);
  return Float64Array.from(u, (x) => lo + (hi - lo) * x);
};

describe('logpAndEntropy: log π(label) and H from one log-softmax', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each([
    [37, 11, 3],
    [64, 512, 8], // the GRPO bench's vocabulary
  ])('N %d, V %d: values and gradient against a float64 loop', async (N, V, scale) => {
    const z64 = uniform(N + V, N * V, -scale, scale);
    const labels = Int32Array.from(uniform(V, N, 0, V - 1e-9), Math.floor);
    const a = uniform(1, N, -1, 1);
    const b = uniform(2, N, -1, 1);
    const want = reference64(Float64Array.from(Float32Array.from(z64)), labels, a, b);
    await expectNoLeak(async () => {
      const z = tf.tensor2d(Float32Array.from(z64), [N, V]);
      const y = tf.tensor1d(labels, 'int32');
      const w = tf.tensor2d(Float32Array.from([...a].flatMap((x, i) => [x, b[i]])), [N, 2]);
      const both = tf.tidy(() => logpAndEntropy(z, y));
      const dz = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(logpAndEntropy(x, y), w)))(z);
      const got = await read(both);
      const lp = got.filter((_, i) => i % 2 === 0);
      const H = got.filter((_, i) => i % 2 === 1);
      expectClose(lp, want.lp, { atol: 2e-6, rtol: 1e-5, what: 'log π' });
      expectClose(H, want.H, { atol: 2e-6, rtol: 1e-5, what: 'entropy' });
      expectClose(await read(dz), want.dz, {
        atol: 1e-6,
        rtol: 1e-5,
        what: '∂/∂z',
      });
      tf.dispose([z, y, w, both, dz]);
    });
  });

  it('refuses logits and labels of mismatched shapes, naming both', () => {
    const z = tf.zeros([3, 5]);
    const y = tf.zeros([4], 'int32');
    expect(() => logpAndEntropy(z, y)).toThrow(/logits \[3,5\], labels int32 \[4\]/);
    tf.dispose([z, y]);
  });
});

describe('targetLogProbs with the entropy: one head pass equals the two it replaced', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each([
    ['gpt2', 2, 1],
    ['llama', 3, 0.7],
    ['gemma2', 1, 1.3], // soft-capped logits
  ] as const)(
    '%s, start %d, τ %d: log π, H and their parameter gradients',
    async (family, start, tau) => {
      const c = TINY[family];
      const model = CausalLM.fromState(c, randomState(c, 23));
      const batch = rightPad(randomRows(c, [7, 6, 5], 9), 0);
      const { batch: B, length: T } = batch;
      const n = T - start;
      const wl = tf.tensor2d(Float32Array.from(uniform(3, B * n, -1, 1)), [B, n]);
      const we = tf.tensor2d(Float32Array.from(uniform(4, B * n, -1, 1)), [B, n]);
      const vars = [...model.params.values()];
      /** The replaced path: the chunked head's log-probs, then the whole logits for the entropy. */
      const old = () => {
        const lp = targetLogProbs(model, batch, { start, temperature: tau }).logp;
        const hidden = model.forward(batch);
        const d = c.hidden;
        const h = tf.reshape(tf.slice(hidden, [0, start - 1, 0], [B, n, d]), [B * n, d]);
        const z = model.headLogits(h);
        const ent = tf.reshape(entropyFromLogits(tau === 1 ? z : tf.div(z, tau)), [B, n]);
        return { logp: lp, entropy: ent };
      };
      const fused = () => {
        const o = targetLogProbs(model, batch, { start, temperature: tau, entropy: true });
        return { logp: o.logp, entropy: o.entropy! };
      };
      const run = async (f: typeof old) => {
        const vals = tf.tidy(() => {
          const o = f();
          return [o.logp, o.entropy];
        });
        const g = tf.variableGrads(() => {
          const o = f();
          return tf.add(tf.sum(tf.mul(o.logp, wl)), tf.sum(tf.mul(o.entropy, we))) as tf.Scalar;
        }, vars);
        const out = {
          logp: await read(vals[0]),
          entropy: await read(vals[1]),
          grads: await Promise.all(vars.map((v) => read(g.grads[v.name]))),
        };
        tf.dispose([...vals, g.value, ...Object.values(g.grads)]);
        return out;
      };
      await expectNoLeak(async () => {
        const a = await run(old);
        const b = await run(fused);
        expectClose(b.logp, a.logp, { atol: 1e-5, rtol: 1e-5, what: 'log π' });
        expectClose(b.entropy, a.entropy, { atol: 1e-5, rtol: 1e-5, what: 'entropy' });
        vars.forEach((v, i) => {
          expectClose(b.grads[i], a.grads[i], { atol: 1e-5, rtol: 1e-4, what: `∂/∂${v.name}` });
        });
        expect(b.grads.some((g) => g.some((x) => x !== 0))).toBe(true);
      });
      tf.dispose([wl, we]);
      model.dispose();
    },
  );

  it.each([1, 0.7])(
    'without a tape (a scoring pass), τ %d: the taped values bit for bit',
    async (tau) => {
      const c = TINY.gpt2; // trainable fp32 head: headLogpAndEntropy
      const model = CausalLM.fromState(c, randomState(c, 31));
      const batch = rightPad(randomRows(c, [7, 6, 5], 10), 0);
      const o = { start: 2, temperature: tau, entropy: true } as const;
      const vars = [...model.params.values()];
      let taped: tf.Tensor[] = [];
      const g = tf.variableGrads(() => {
        const r = targetLogProbs(model, batch, o);
        taped = [tf.keep(r.logp), tf.keep(r.entropy!)];
        return tf.sum(r.logp) as tf.Scalar;
      }, vars);
      const want = [await read(taped[0]), await read(taped[1])];
      tf.dispose([...taped, g.value, ...Object.values(g.grads)]);
      const got = await expectNoLeak(async () => {
        const [lp, H] = tf.tidy(() => {
          const r = targetLogProbs(model, batch, o);
          return [r.logp, r.entropy!];
        });
        const out = [await read(lp), await read(H)];
        tf.dispose([lp, H]);
        return out;
      });
      expect(got[0]).toEqual(want[0]);
      expect(got[1]).toEqual(want[1]);
      model.dispose();
    },
  );

  it("entropy 'metric': the same values, and the log-probs' own gradient bit for bit", async () => {
    const c = TINY.gpt2;
    const model = CausalLM.fromState(c, randomState(c, 29));
    const batch = rightPad(randomRows(c, [6, 6], 11), 0);
    const n = batch.length - 2;
    const wl = tf.tensor2d(Float32Array.from(uniform(5, 2 * n, -1, 1)), [2, n]);
    const vars = [...model.params.values()];
    const grads = async (entropy: boolean | 'metric', withEntropy: boolean) => {
      const g = tf.variableGrads(() => {
        const o = targetLogProbs(model, batch, { start: 2, entropy });
        const l = tf.sum(tf.mul(o.logp, wl));
        return (withEntropy ? tf.add(l, tf.sum(o.entropy!)) : l) as tf.Scalar;
      }, vars);
      const out = await Promise.all(vars.map((v) => read(g.grads[v.name])));
      tf.dispose([g.value, ...Object.values(g.grads)]);
      return out;
    };
    await expectNoLeak(async () => {
      const [a, b] = tf.tidy(() => {
        const x = targetLogProbs(model, batch, { start: 2, entropy: true });
        const y = targetLogProbs(model, batch, { start: 2, entropy: 'metric' });
        return [tf.concat([x.logp, x.entropy!]), tf.concat([y.logp, y.entropy!])];
      });
      expect(await read(b)).toEqual(await read(a));
      tf.dispose([a, b]);
      const metric = await grads('metric', true);
      const logpOnly = await grads(false, false); // the chunked head, no entropy
      const full = await grads(true, true);
      // Bit for bit: the log-probs' backward is the chunked head's kept block's arithmetic.
      vars.forEach((v, i) => {
        expect(metric[i], `∂/∂${v.name}`).toEqual(logpOnly[i]);
      });
      // ... and the entropy's own term is not zero, so leaving it out is seen.
      expect(full.some((g, i) => g.some((x, j) => Math.abs(x - logpOnly[i][j]) > 1e-4))).toBe(true);
    });
    wl.dispose();
    model.dispose();
  });
});
