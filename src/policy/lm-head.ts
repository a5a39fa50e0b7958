import { logProbsFromLogits } from '../kernels/numerics/index.js';
import * as tf from '../kernels/tf.js';

/**
 * log π(label) of each row through the LM head, `chunk` rows at a time, forward and backward:
 * at most chunk × V logits exist at once (a [512, 50257] logits tensor and its gradients were
 * most of a GPT-2 training step's memory). Same values and gradients as
 * `logProbsFromLogits(h·Wᵀ, labels)`.
 *
 *   h: [N, d]   w: [V, d] when tied to the embedding, else [d, V]   labels: [N] int32  →  [N]
 *
 * Backward, per chunk: g = dy·(onehot − softmax(z)) [C, V]; dh = g·W (tied) or g·Wᵀ;
 * dW += gᵀ·h (tied) or hᵀ·g.
 */
export function headLogProbs(
  h: tf.Tensor,
  w: tf.Tensor,
  labels: tf.Tensor,
  tied: boolean,
  chunk = 128,
): tf.Tensor {
  const N = h.shape[0] as number;
  const V = (tied ? w.shape[0] : w.shape[1]) as number;
  const logitsOf = (hc: tf.Tensor, wt: tf.Tensor) =>
    tied ? tf.matMul(hc, wt, false, true) : tf.matMul(hc, wt);
  const chunks = (fn: (begin: number, size: number) => void) => {
    for (let b = 0; b < N; b += chunk) fn(b, Math.min(chunk, N - b));
  };
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [hIn, wIn, yIn] = args as tf.Tensor[];
    save([hIn, wIn, yIn]);
    const parts: tf.Tensor[] = [];
    chunks((b, c) => {
      parts.push(
        tf.tidy(() => {
          const z = logitsOf(tf.slice(hIn, [b, 0], [c, -1]), wIn); // (C, V)
          const y = tf.slice(yIn, [b], [c]);
          return tf.reshape(logProbsFromLogits(tf.reshape(z, [1, c, V]), tf.reshape(y, [1, c])), [
            c,
          ]);
        }),
      );
    });
    const value = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [hs, ws, ys] = saved;
        const dhParts: tf.Tensor[] = [];
        let dw: tf.Tensor = tf.zerosLike(ws);
        chunks((b, c) => {
          const [dh, next] = tf.tidy(() => {
            const hc = tf.slice(hs, [b, 0], [c, -1]); // (C, d)
            const z = logitsOf(hc, ws); // (C, V)
            const p = tf.softmax(z);
            const onehot = tf.oneHot(tf.slice(ys, [b], [c]), V);
            const g = tf.mul(
              tf.sub(onehot, p),
              tf.reshape(tf.slice(dy as tf.Tensor, [b], [c]), [c, 1]),
            ); // (C, V)
            const dhc = tied ? tf.matMul(g, ws) : tf.matMul(g, ws, false, true); // (C, d)
            const dwc = tied ? tf.matMul(g, hc, true, false) : tf.matMul(hc, g, true, false); // like W
            return [dhc, tf.add(dw, dwc)];
          });
          dw.dispose();
          dw = next;
          dhParts.push(dh);
        });
        const dh = dhParts.length === 1 ? dhParts[0] : tf.concat(dhParts, 0);
        return [dh, dw, tf.zeros(ys.shape, 'float32')];
      },
    };
  });
  return f(h, w, labels) as tf.Tensor;
}
