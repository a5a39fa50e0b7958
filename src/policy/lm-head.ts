import { logSoftmaxPick, logSoftmaxPickGrad } from '../kernels/custom/native-rows.js';
import * as tf from '../kernels/tf.js';

/** Logits per forward chunk or backward block by default: 8M floats, 32 MB. */
const CHUNK_LOGITS = 1 << 23;
/** Up to this many logits (128 MB) the forward keeps ∂lp/∂logits for the backward instead. */
const KEEP_LOGITS = 1 << 25;

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
 *
 * A frozen weight (a variable with `trainable` false: LoRA's and QLoRA's base, Trainable marks
 * it) is no input of the custom gradient: no dW is computed or held (at Qwen2.5's vocabulary
 * [151936, 896] that was 545 MB, twice over while its blocks were joined, and 35 GFLOP per 128
 * tokens).
 */
export function headLogProbs(
  h: tf.Tensor,
  w: tf.Tensor,
  labels: tf.Tensor,
  tied: boolean,
  rowChunk?: number,
  vocabBlock?: number,
): tf.Tensor {
  const N = h.shape[0] as number;
  const d = h.shape[1] as number;
  const V = (tied ? w.shape[0] : w.shape[1]) as number;
  // By default a chunk or block holds ~8M logits (32 MB): GPT-2's vocabulary takes 166 rows per
  // forward chunk, a 512-token vocabulary all rows at once (chunking it cost ~15 % of a small
  // model's step in slices and per-chunk kernels).
  const rows = rowChunk ?? Math.max(128, Math.floor(CHUNK_LOGITS / V));
  const cols = vocabBlock ?? Math.max(4096, Math.floor(CHUNK_LOGITS / Math.max(N, 1)));
  const logitsOf = (hc: tf.Tensor, wt: tf.Tensor) =>
    tied ? tf.matMul(hc, wt, false, true) : tf.matMul(hc, wt);
  if (rowChunk === undefined && vocabBlock === undefined && N * V <= KEEP_LOGITS) {
    return keptHeadLogProbs(h, w, labels, tied);
  }
  const frozen = isFrozen(w);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [hIn, wIn, yIn] = withWeight(args as tf.Tensor[], w, frozen);
    const lps: tf.Tensor[] = [];
    const lses: tf.Tensor[] = [];
    for (let b = 0; b < N; b += rows) {
      const c = Math.min(rows, N - b);
      const [lp, lse] = tf.tidy(() => {
        const hc = c === N ? hIn : tf.slice(hIn, [b, 0], [c, -1]);
        const y = c === N ? yIn : tf.slice(yIn, [b], [c]);
        return logSoftmaxPick(logitsOf(hc, wIn), y); // (C,), (C,) from the (C, V) logits
      });
      lps.push(lp);
      lses.push(lse);
    }
    const value = lps.length === 1 ? lps[0] : tf.concat(lps, 0);
    const lse = lses.length === 1 ? lses[0] : tf.concat(lses, 0);
    if (lps.length > 1) tf.dispose([...lps, ...lses]);
    save(saving([hIn, wIn, yIn, lse], frozen));
    return {
      value,
      gradFunc: (dyIn: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [hs, ws, ys, lseS] = withWeight(saved, w, frozen);
        const dy = tf.reshape(dyIn as tf.Tensor, [N]);
        let dh: tf.Tensor | undefined;
        const blocks: tf.Tensor[] = [];
        for (let v0 = 0; v0 < V; v0 += cols) {
          const vb = Math.min(cols, V - v0);
          const [dwb, next] = tf.tidy(() => {
            const whole = vb === V;
            const wb = whole
              ? ws
              : tied
                ? tf.slice(ws, [v0, 0], [vb, d])
                : tf.slice(ws, [0, v0], [d, vb]);
            // dy·(onehot − softmax) on the block's columns (N, Vb); no one-hot outside the block
            const g = logSoftmaxPickGrad(logitsOf(hs, wb), lseS, ys, dy, v0);
            const dwBlock = frozen
              ? undefined
              : tied
                ? tf.matMul(g, hs, true, false)
                : tf.matMul(hs, g, true, false);
            const dhBlock = tied ? tf.matMul(g, wb) : tf.matMul(g, wb, false, true); // (N, d)
            return [dwBlock, dh ? tf.add(dh, dhBlock) : dhBlock];
          });
          dh?.dispose();
          dh = next;
          if (dwb) blocks.push(dwb);
        }
        dy.dispose();
        const dz = tf.zeros(ys.shape, 'float32');
        if (frozen) return [dh as tf.Tensor, dz];
        const dw = blocks.length === 1 ? blocks[0] : tf.concat(blocks, tied ? 0 : 1);
        if (blocks.length > 1) tf.dispose(blocks);
        return [dh as tf.Tensor, dw, dz];
      },
    };
  });
  return (frozen ? f(h, labels) : f(h, w, labels)) as tf.Tensor;
}

/** Whether the head's weight is frozen: a variable marked not trainable (LoRA's base). */
function isFrozen(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && !w.trainable;
}

/**
 * The custom gradient's (h, w, labels, …) from its inputs or saved tensors: when frozen, w comes
 * from the closure, neither an input nor saved (a saved tensor is cloned: one more [V, d]).
 */
function withWeight(args: tf.Tensor[], w: tf.Tensor, frozen: boolean): tf.Tensor[] {
  return frozen ? [args[0], w, ...args.slice(1)] : args;
}

/** What a custom gradient saves of (h, w, labels, …): all but w when frozen. */
function saving(tensors: tf.Tensor[], frozen: boolean): tf.Tensor[] {
  return frozen ? [tensors[0], ...tensors.slice(2)] : tensors;
}

/**
 * The backward of a head block that kept e = onehot(label) − softmax(z) [N, V] from its forward,
 * for row weights dy [N, 1] of the log-probs: dy scales rows, so it moves to the [N, d] side,
 *   dh = dy ⊙ (e·W) (tied) or dy ⊙ (e·Wᵀ),   dW = eᵀ·(dy ⊙ h) (tied) or (dy ⊙ h)ᵀ·e
 * (dW only `withWeight`: a frozen head gets none).
 */
export function keptHeadBackward(
  e: tf.Tensor,
  h: tf.Tensor,
  w: tf.Tensor,
  dy: tf.Tensor,
  tied: boolean,
  withWeight: boolean,
): { dh: tf.Tensor; dw?: tf.Tensor } {
  const eW = tied ? tf.matMul(e, w) : tf.matMul(e, w, false, true); // (N, d)
  const dh = tf.mul(eW, dy);
  eW.dispose();
  if (!withWeight) return { dh };
  const hy = tf.mul(h, dy); // (N, d)
  const dw = tied ? tf.matMul(e, hy, true, false) : tf.matMul(hy, e, true, false);
  hy.dispose();
  return { dh, dw };
}

/**
 * `headLogProbs` in one block that keeps e = onehot(label) − softmax(z) [N, V] from the forward,
 * so the backward needs no second pass over the logits (at GPT-2's vocabulary recomputing them
 * was a quarter of the head's 156 GFLOP); its backward is `keptHeadBackward`.
 *
 * With no tape recording (a frozen reference scoring rollouts, π_old, evaluation) no gradient
 * can be taken of this call, so e is not computed: the same z and pick, so the same log-probs
 * bit for bit, holding [N, V] floats once instead of twice and skipping e's exp over them. The
 * test is tfjs' own (`engine.isTapeOn()`, at the call): the one by which the custom gradient's
 * `save` would drop e and no tape node would be recorded, so it cannot drop what a gradient uses.
 */
function keptHeadLogProbs(h: tf.Tensor, w: tf.Tensor, labels: tf.Tensor, tied: boolean): tf.Tensor {
  if (!tf.engine().isTapeOn()) {
    return tf.tidy(() => {
      const z = tied ? tf.matMul(h, w, false, true) : tf.matMul(h, w); // (N, V)
      const [lp, lse] = logSoftmaxPick(z, labels);
      lse.dispose();
      return lp;
    });
  }
  const N = h.shape[0] as number;
  const frozen = isFrozen(w);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [hIn, wIn, yIn] = withWeight(args as tf.Tensor[], w, frozen);
    const [value, e] = tf.tidy(() => {
      const z = tied ? tf.matMul(hIn, wIn, false, true) : tf.matMul(hIn, wIn); // (N, V)
      const [lp, lse] = logSoftmaxPick(z, yIn);
      return [lp, logSoftmaxPickGrad(z, lse, yIn, tf.onesLike(lp))];
    });
    save(saving([hIn, wIn, yIn, e], frozen));
    return {
      value,
      gradFunc: (dyIn: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [hs, ws, ys, es] = withWeight(saved, w, frozen);
        const dy = tf.reshape(dyIn as tf.Tensor, [N, 1]);
        const { dh, dw } = keptHeadBackward(es, hs, ws, dy, tied, !frozen);
        dy.dispose();
        const dz = tf.zeros(ys.shape, 'float32');
        return frozen ? [dh, dz] : [dh, dw!, dz];
      },
    };
  });
  return (frozen ? f(h, labels) : f(h, w, labels)) as tf.Tensor;
}
