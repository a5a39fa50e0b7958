import { beforeAll, describe, expect, it } from 'vitest';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { headLogProbs } from '../../src/policy/lm-head.js';
import { BACKEND_CASES, expectClose, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';

/**
 * The LM head's kept block (N·V ≤ 2²⁵) with and without a gradient tape. Under tf.grads it
 * keeps e = onehot − softmax [N, V] for its backward; with no tape recording (a frozen
 * reference's scoring, π_old, evaluation) it computes only the log-probs. Both against a
 * float64 loop, the tape-free log-probs bit for bit the taped ones, and on wasm the heap's peak:
 * a tape-free forward holds the logits once (it held them and e before).
 */

interface Case {
  N: number;
  d: number;
  V: number;
  h: Float32Array;
  w: Float32Array;
  y: Int32Array;
  dy: Float32Array;
}

function makeCase(N: number, d: number, V: number, seed: number): Case {
  const r = RandomStream.of({ seed, step: 0, actor: 'head-forward' });
  return {
    N,
    d,
    V,
    h: Float32Array.from(r.normal(N * d)),
    w: Float32Array.from(r.normal(V * d)),
    y: Int32Array.from({ length: N }, () => r.nextInt(V)),
    dy: Float32Array.from(r.normal(N)),
  };
}

/** log π(label), ∂(Σ dy·lp)/∂h and /∂W in float64, W [V, d] when tied, else [d, V]. */
function reference(c: Case, tied: boolean) {
  const { N, d, V, h, w, y, dy } = c;
  const W = (v: number, k: number) => (tied ? w[v * d + k] : w[k * V + v]);
  const lp = new Float64Array(N);
  const dh = new Float64Array(N * d);
  const dw = new Float64Array(V * d);
  const z = new Float64Array(V);
  for (let i = 0; i < N; i++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += h[i * d + k] * W(v, k);
      z[v] = s;
      m = Math.max(m, s);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(z[v] - m);
    const lse = m + Math.log(sum);
    lp[i] = z[y[i]] - lse;
    for (let v = 0; v < V; v++) {
      const g = dy[i] * ((v === y[i] ? 1 : 0) - Math.exp(z[v] - lse));
      for (let k = 0; k < d; k++) {
        dh[i * d + k] += g * W(v, k);
        dw[tied ? v * d + k : k * V + v] += g * h[i * d + k];
      }
    }
  }
  return { lp, dh, dw };
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(
    `headLogProbs' kept block with and without a tape on ${backend}${skip ? ` (${skip})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each([
        [true, false],
        [false, false],
        [true, true],
        [false, true],
      ] as const)('tied %s, frozen weight %s', async (tied, frozen) => {
        const c = makeCase(9, 6, 37, tied ? 3 : 4);
        const want = reference(c, tied);
        const h = tf.tensor2d(c.h, [c.N, c.d]);
        const w = tf.variable(tf.tensor2d(c.w, tied ? [c.V, c.d] : [c.d, c.V]), !frozen);
        const y = tf.tensor1d(c.y, 'int32');
        const dy = tf.tensor1d(c.dy);
        await expectNoLeak(async () => {
          // taped: the value seen inside the gradient's function, and its gradients
          let taped: tf.Tensor | undefined;
          let tapeOn = false;
          const xs = frozen ? [h] : [h, w];
          const grads = tf.grads((...args: tf.Tensor[]) => {
            tapeOn = tf.engine().isTapeOn();
            const lp = headLogProbs(args[0], frozen ? w : args[1], y, tied);
            taped = tf.keep(tf.clone(lp));
            return tf.sum(tf.mul(lp, dy));
          })(xs);
          expect(tapeOn).toBe(true);
          const free = tf.tidy(() => headLogProbs(h, w, y, tied));
          expect(tf.engine().isTapeOn()).toBe(false);
          const lpTaped = await read(taped!);
          const lpFree = await read(free);
          expect(Array.from(lpFree)).toEqual(Array.from(lpTaped));
          expectClose(lpFree, want.lp, { atol: 1e-5, rtol: 1e-5, what: 'log-probs' });
          expectClose(await read(grads[0]), want.dh, { atol: 1e-5, rtol: 1e-4, what: 'dh' });
          if (!frozen) {
            expectClose(await read(grads[1]), want.dw, { atol: 1e-5, rtol: 1e-4, what: 'dW' });
          }
          tf.dispose([taped!, free, ...grads]);
        });
        tf.dispose([h, w, y, dy]);
      });
    },
  );
}

describe.skipIf(nativeSkip !== null)(
  `the kept block's memory on wasm${nativeSkip ? ` (${nativeSkip})` : ''}`,
  () => {
    beforeAll(async () => {
      await useBackend('wasm');
    });

    /** The wasm heap's peak above what was live (each buffer once) while `f` runs. */
    async function peak(f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
      const start = wasmTensorBytes({ reset: true })!.liveBytes;
      const out = f();
      const measured = wasmTensorBytes()!.peakBytes - start;
      tf.dispose(out);
      return measured;
    }

    it.each([true, false])(
      'tied %s: [N, V] held once without a tape, twice under one',
      async (tied) => {
        // 128 × 8192 logits: 4 MiB, the rows and weights 8 KiB and 512 KiB
        const c = makeCase(128, 16, 8192, 5);
        const h = tf.tensor2d(c.h, [c.N, c.d]);
        const w = tf.tensor2d(c.w, tied ? [c.V, c.d] : [c.d, c.V]);
        const y = tf.tensor1d(c.y, 'int32');
        const logits = c.N * c.V * 4;
        const free = await peak(() => tf.tidy(() => headLogProbs(h, w, y, tied)));
        expect(free, `forward without a tape: ${free} bytes`).toBeGreaterThanOrEqual(logits);
        expect(free, `forward without a tape: ${free} bytes`).toBeLessThan(1.1 * logits);
        const taped = await peak(() =>
          tf.grads((hh: tf.Tensor, ww: tf.Tensor) => tf.sum(headLogProbs(hh, ww, y, tied)))([h, w]),
        );
        expect(taped, `forward and backward: ${taped} bytes`).toBeGreaterThanOrEqual(2 * logits);
        tf.dispose([h, w, y]);
      },
    );
  },
);
