import { logProbsFromLogits } from '../kernels/numerics/index.js';
import * as tf from '../kernels/tf.js';

/**
 * log π(label) of each row through the LM head, never holding more than a slice of the
 * [N, V] logits: the forward goes `rowChunk` rows at a time, the backward `vocabBlock` vocabulary
 * columns at a time. Same values and gradients as `logProbsFromLogits(h·Wᵀ, labels)`; at GPT-2's
 * vocabulary the whole logits and their gradients were most of a training step's memory, and
 * accumulating a [V, d] weight gradient chunk by chunk fragmented the wasm heap.
 *
 *   h: [N, d]   w: [V, d] when tied to the embedding, else [d, V]   labels: [N] int32  →  [N]
 *
 * Backward, per vocabulary block b (lse saved by the forward):
 *   g_b = dy·(onehot_b − exp(z_b − lse))      [N, Vb]
 *   dW_b = g_bᵀ·h (tied) or hᵀ·g_b             [Vb, d] or [d, Vb]
 *   dh += g_b·W_b (tied) or g_b·W_bᵀ           [N, d]
 */
export function headLogProbs(
  h: tf.Tensor,
  w: tf.Tensor,
  labels: tf.Tensor,
  tied: boolean,
  rowChunk = 128,
  vocabBlock = 4096,
): tf.Tensor {
  const N = h.shape[0] as number;
  const d = h.shape[1] as number;
  const V = (tied ? w.shape[0] : w.shape[1]) as number;
  const logitsOf = (hc: tf.Tensor, wt: tf.Tensor) =>
    tied ? tf.matMul(hc, wt, false, true) : tf.matMul(hc, wt);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [hIn, wIn, yIn] = args as tf.Tensor[];
    const lps: tf.Tensor[] = [];
    const lses: tf.Tensor[] = [];
    for (let b = 0; b < N; b += rowChunk) {
      const c = Math.min(rowChunk, N - b);
      const [lp, lse] = tf.tidy(() => {
        const z = logitsOf(tf.slice(hIn, [b, 0], [c, -1]), wIn); // (C, V)
        const y = tf.slice(yIn, [b], [c]);
        const lpc = tf.reshape(
          logProbsFromLogits(tf.reshape(z, [1, c, V]), tf.reshape(y, [1, c])),
          [c],
        );
        return [lpc, tf.logSumExp(z, 1)]; // (C,), (C,)
      });
      lps.push(lp);
      lses.push(lse);
    }
    const value = lps.length === 1 ? lps[0] : tf.concat(lps, 0);
    const lse = lses.length === 1 ? lses[0] : tf.concat(lses, 0);
    if (lps.length > 1) tf.dispose([...lps, ...lses]);
    save([hIn, wIn, yIn, lse]);
    return {
      value,
      gradFunc: (dyIn: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [hs, ws, ys, lseS] = saved;
        const dy = tf.reshape(dyIn as tf.Tensor, [N, 1]);
        const lseCol = tf.reshape(lseS, [N, 1]);
        let dh: tf.Tensor = tf.zeros([N, d]);
        const blocks: tf.Tensor[] = [];
        for (let v0 = 0; v0 < V; v0 += vocabBlock) {
          const vb = Math.min(vocabBlock, V - v0);
          const [dwb, next] = tf.tidy(() => {
            const wb = tied ? tf.slice(ws, [v0, 0], [vb, d]) : tf.slice(ws, [0, v0], [d, vb]);
            const p = tf.exp(tf.sub(logitsOf(hs, wb), lseCol)); // (N, Vb) softmax columns
            const onehot = tf.oneHot(tf.sub(ys, tf.scalar(v0, 'int32')), vb); // 0 outside the block
            const g = tf.mul(tf.sub(onehot, p), dy); // (N, Vb)
            const dwBlock = tied ? tf.matMul(g, hs, true, false) : tf.matMul(hs, g, true, false);
            const dhBlock = tied ? tf.matMul(g, wb) : tf.matMul(g, wb, false, true); // (N, d)
            return [dwBlock, tf.add(dh, dhBlock)];
          });
          dh.dispose();
          dh = next;
          blocks.push(dwb);
        }
        const dw = blocks.length === 1 ? blocks[0] : tf.concat(blocks, tied ? 0 : 1);
        if (blocks.length > 1) tf.dispose(blocks);
        tf.dispose([dy, lseCol]);
        return [dh, dw, tf.zeros(ys.shape, 'float32')];
      },
    };
  });
  return f(h, w, labels) as tf.Tensor;
}
