import type { TokenBatch } from '../data/batching/collate.js';
import { TroupeError } from '../errors.js';
import { logSoftmaxPick, logSoftmaxPickGrad, rowEntropy } from '../kernels/custom/native-rows.js';
import * as tf from '../kernels/tf.js';
import { keptHeadBackward } from './lm-head.js';
import type { CausalLM, ForwardOptions } from './model/causal-lm.js';
import { KVCache } from './model/kv-cache.js';

/** Which targets `targetLogProbs` scores, and how. */
export interface TargetOptions {
  /**
   * The first target column: tokens [start, T) of each row are scored, each by the hidden state
   * just before it. 1 (the default) scores every next token (LM loss, teacher-forced scores,
   * preference replies); a rollout's prompt width P scores its A = T − P actions.
   */
  readonly start?: number;
  /** Sampling temperature τ: log-softmax(z/τ), z the (soft-capped) logits. Default 1. */
  readonly temperature?: number;
  /**
   * Also the entropy of π(·|x_<t) at each target (needs the [N, V] logits); 'metric': the same
   * values, but no gradient flows through them (the backward skips the entropy's term).
   */
  readonly entropy?: boolean | 'metric';
  /**
   * Rows whose first `start` tokens (ids and mask) repeat another row's — GRPO's n samples of a
   * prompt — run those columns once and continue from a copy of their KV cache
   * (`sharedPrefixHidden`): the same bits as the full forward without a gradient; under one,
   * the loss and gradients up to float32 rounding (the gradients are summed in another order:
   * a prompt's rows add up once). Not with gradient checkpointing or a caller's cache.
   */
  readonly sharePrefix?: boolean;
}

/**
 * Tokens a shared prefix and its continuation each need at least: every product of their
 * forwards then takes the kernel the full forward's takes (attention: one product per row and
 * head of that many rows; the projections: rows × tokens), whose sums run in the same order for
 * any number of rows. Fewer rows go to the native small-M product (≤ 16 rows, native/smallm.c)
 * or the few-row bf16-weight loop (< 32, w16rows.c), ordered differently.
 */
const SAME_KERNEL_ROWS = 32;

/**
 * log π(x_t | x_<t) of the target tokens of every row: the one function every log-prob of a
 * label goes through (the LM loss, `tokenLogprobs`, the RL roles' action log-probs, the
 * preference roles' reply log-probs). The hidden state at column t − 1 predicts token t, and the
 * LM head runs chunked (`CausalLM.tokenLogProbs`: never all [N, V] logits) unless the entropy is
 * asked for; then the [N, V] logits are computed once and both the log-probs and the entropy
 * come from their one log-softmax (`logpAndEntropy`). Padding targets are scored too; callers
 * mask them. Not tidied: call it inside the caller's tidy or gradient.
 *   batch: B rows of T tokens  →  logp [B, T − start], entropy [B, T − start]
 */
export function targetLogProbs(
  model: CausalLM,
  batch: TokenBatch,
  o: TargetOptions = {},
  forward: ForwardOptions = {},
): { logp: tf.Tensor2D; entropy?: tf.Tensor2D } {
  const { batch: B, length: T, ids } = batch;
  const start = o.start ?? 1;
  const temperature = o.temperature ?? 1;
  if (!Number.isSafeInteger(start) || start < 1 || start >= T) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `targetLogProbs: start must be an integer in [1, ${T - 1}] for rows of ${T} tokens, got ${start}`,
    );
  }
  const n = T - start;
  const d = model.config.hidden;
  const targets = new Int32Array(B * n);
  for (let b = 0; b < B; b++) targets.set(ids.subarray(b * T + start, (b + 1) * T), b * n);
  // (N, d): the hidden state before each target, each repeated prompt run once where it may be
  const shared =
    o.sharePrefix && !forward.cache && !forward.checkpoint
      ? sharedPrefixHidden(model, batch, start)
      : null;
  const h =
    shared ??
    tf.reshape(tf.slice(model.forward(batch, forward), [0, start - 1, 0], [B, n, d]), [B * n, d]);
  const labels = tf.tensor1d(targets, 'int32');
  if (!o.entropy) {
    const lp = model.tokenLogProbs(h, labels, temperature); // (N,) chunked head
    return { logp: tf.reshape(lp, [B, n]) as tf.Tensor2D };
  }
  // The entropy needs the whole [N, V] logits: both come from them, through one log-softmax.
  const entropyGrad = o.entropy !== 'metric';
  const c = model.config;
  const fp32Head =
    c.finalSoftcap === undefined && !model.weights16?.head(c.tieEmbeddings) && model.hasLmHead;
  const head = fp32Head ? model.headWeight() : undefined;
  let both: tf.Tensor2D;
  if (head?.weight.trainable) {
    const hs = temperature === 1 ? h : tf.div(h, temperature);
    both = headLogpAndEntropy(hs, head.weight, labels, head.tied, entropyGrad);
  } else {
    const logits = model.headLogits(h); // soft-capped, bf16 or frozen: autodiff through the head
    const scaled = temperature === 1 ? logits : tf.div(logits, temperature);
    both = logpAndEntropy(scaled, labels, entropyGrad);
  }
  return {
    logp: tf.reshape(tf.slice(both, [0, 0], [B * n, 1]), [B, n]) as tf.Tensor2D,
    entropy: tf.reshape(tf.slice(both, [0, 1], [B * n, 1]), [B, n]) as tf.Tensor2D,
  };
}

/**
 * log-softmax(z)[label] and the entropy H = −Σ p·log p of softmax(z), per row, from one
 * log-softmax of the logits (its log-sum-exp from the native pick where available):
 *   z: [N, V] float32   labels: [N] int32  →  [N, 2]: column 0 log π(label), column 1 H
 * Backward (custom), with q = log-softmax(z) saved by the forward and p = exp(q):
 *   dz = dlp·(onehot(label) − p) − dH·p ⊙ (q + H)
 * With `entropyGrad` false the entropy is a metric: its term is left out (dH taken as 0).
 */
export function logpAndEntropy(z: tf.Tensor, labels: tf.Tensor, entropyGrad = true): tf.Tensor2D {
  const N = z.shape[0] as number;
  if (z.rank !== 2 || labels.rank !== 1 || labels.shape[0] !== N || labels.dtype !== 'int32') {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `logpAndEntropy: logits must be [N, V] and labels int32 [N]; got logits [${z.shape.join(',')}], labels ${labels.dtype} [${labels.shape.join(',')}]`,
    );
  }
  const f = tf.customGrad((...args) => {
    const [x, y, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [lp, lse] = logSoftmaxPick(x, y); // (N,), (N,)
    const q = tf.sub(x, tf.reshape(lse, [N, 1])); // (N, V) log-softmax, once (the backward's)
    const H = rowEntropy(x, lse); // (N,) −Σ p·log p in one pass
    save([y, q, H]);
    return {
      value: tf.stack([lp, H], 1) as tf.Tensor2D, // (N, 2)
      gradFunc: (dy: tf.Tensor, [ys, qs, Hs]: tf.Tensor[]) => {
        const dlp = tf.reshape(tf.slice(dy, [0, 0], [N, 1]), [N]);
        const pick = logSoftmaxPickGrad(qs, tf.zeros([N]), ys, dlp); // dlp·(onehot − exp(q − 0))
        if (!entropyGrad) return [pick, tf.zeros([N], 'float32')];
        const dH = tf.slice(dy, [0, 1], [N, 1]); // (N, 1)
        const ent = tf.mul(tf.mul(tf.exp(qs), tf.add(qs, tf.reshape(Hs, [N, 1]))), dH);
        return [tf.sub(pick, ent), tf.zeros([N], 'float32')];
      },
    };
  });
  return f(z, labels) as tf.Tensor2D;
}

/**
 * `logpAndEntropy(h·Wᵀ or h·W, labels)` through a trainable fp32 LM head, in one custom gradient
 * that keeps e = onehot(label) − softmax(z) [N, V] from the forward: the log-probs' backward is
 * the arithmetic of the chunked head's kept block (lm-head.ts keptHeadLogProbs), so with the
 * entropy a metric (`entropyGrad` false) the gradients are those of the log-probs alone, bit for
 * bit. With `entropyGrad`, dz = dlp ⊙ e − dH ⊙ p ⊙ (q + H) goes through the head.
 *   h: [N, d]   w: [V, d] (tied) or [d, V]   labels: [N] int32  →  [N, 2] (log π, H)
 */
function headLogpAndEntropy(
  h: tf.Tensor,
  w: tf.Tensor,
  labels: tf.Tensor,
  tied: boolean,
  entropyGrad: boolean,
): tf.Tensor2D {
  const N = h.shape[0] as number;
  /** z = h·W, log π(label) and H (and q = log-softmax(z)) */
  const forward = (hIn: tf.Tensor, wIn: tf.Tensor, yIn: tf.Tensor) => {
    const z = tied ? tf.matMul(hIn, wIn, false, true) : tf.matMul(hIn, wIn); // (N, V)
    const [pick, lse] = logSoftmaxPick(z, yIn);
    return { z, pick, lse, ent: rowEntropy(z, lse) }; // ent (N,): −Σ p·log p in one pass
  };
  // No tape (a scoring pass: π_old with its entropy): no gradient can reach this call, so e is
  // not made; the values are the same ops' (lm-head.ts keptHeadLogProbs tests the same way).
  if (!tf.engine().isTapeOn()) {
    return tf.tidy(() => {
      const { pick, ent } = forward(h, w, labels);
      return tf.stack([pick, ent], 1) as tf.Tensor2D;
    });
  }
  const f = tf.customGrad((...args) => {
    const [hIn, wIn, yIn, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [lp, e, H, q] = tf.tidy(() => {
      const { z, pick, lse, ent } = forward(hIn, wIn, yIn);
      const e = logSoftmaxPickGrad(z, lse, yIn, tf.onesLike(pick));
      // the log-softmax only where the entropy's gradient needs it
      return entropyGrad ? [pick, e, ent, tf.sub(z, tf.reshape(lse, [N, 1]))] : [pick, e, ent];
    });
    save(entropyGrad ? [hIn, wIn, e, q, H] : [hIn, wIn, e]);
    const value = tf.stack([lp, H], 1) as tf.Tensor2D; // (N, 2)
    tf.dispose(entropyGrad ? [lp] : [lp, H]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws, es, qs, Hs] = saved;
        const dlp = tf.slice(dy, [0, 0], [N, 1]); // (N, 1)
        if (!entropyGrad) {
          const { dh, dw } = keptHeadBackward(es, hs, ws, dlp, tied, true);
          return [dh, dw!, tf.zeros([N], 'float32')];
        }
        const dH = tf.slice(dy, [0, 1], [N, 1]); // (N, 1)
        const gH = tf.mul(tf.mul(tf.exp(qs), tf.add(qs, tf.reshape(Hs, [N, 1]))), dH);
        const g = tf.sub(tf.mul(es, dlp), gH); // (N, V) ∂/∂z
        const dh = tied ? tf.matMul(g, ws) : tf.matMul(g, ws, false, true);
        const dw = tied ? tf.matMul(g, hs, true, false) : tf.matMul(hs, g, true, false);
        return [dh, dw, tf.zeros([N], 'float32')];
      },
    };
  });
  return f(h, w, labels) as tf.Tensor2D;
}

/**
 * The hidden states at columns start − 1 … T − 2 of every row ([B·(T − start), d], what
 * `targetLogProbs` scores), with the columns before `start` run once per distinct prefix: the
 * D distinct prefixes are one forward into a KV cache (tensors), the cache's rows are copied to
 * the B rows, and columns start … T − 1 continue from it. Null (nothing computed) when no prefix
 * repeats, or the prefix or its continuation is shorter than SAME_KERNEL_ROWS tokens.
 *
 * The same bits as the full forward: a row's hidden states depend on its own tokens only and the
 * products' sums run in the same order for any number of rows (sgemm), the prefix's queries see
 * the same real keys (the full forward's later keys are masked to e^−87 ≪ one ulp of a softmax
 * sum ≥ 1), and the continuation attends over all T columns as the full forward does (its last
 * column, a target only, is computed for that: a row of T − 1 keys would sum its softmax in
 * another order). Tested against the full forward bit for bit.
 */
export function sharedPrefixHidden(
  model: CausalLM,
  batch: TokenBatch,
  start: number,
): tf.Tensor | null {
  const { batch: B, length: T, ids, mask } = batch;
  if (start < SAME_KERNEL_ROWS || T - start < SAME_KERNEL_ROWS) return null;
  const { first, index } = prefixGroups(batch, start);
  const D = first.length;
  if (D === B) return null;
  const d = model.config.hidden;
  const n = T - start;
  const columns = (rows: ArrayLike<number>, from: number, to: number): TokenBatch => {
    const w = to - from;
    const out = { ids: new Int32Array(rows.length * w), mask: new Uint8Array(rows.length * w) };
    for (let i = 0; i < rows.length; i++) {
      const at = rows[i] * T;
      out.ids.set(ids.subarray(at + from, at + to), i * w);
      out.mask.set(mask.subarray(at + from, at + to), i * w);
    }
    return { ...out, batch: rows.length, length: w };
  };
  const prefixCache = new KVCache(D, { store: 'tensors' });
  let rowsCache: KVCache | undefined;
  try {
    const prefix = model.forward(columns(first, 0, start), { cache: prefixCache }); // (D, start, d)
    rowsCache = prefixCache.expand(index);
    const rest = model.forward(
      columns(
        Int32Array.from({ length: B }, (_, b) => b),
        start,
        T,
      ),
      {
        cache: rowsCache,
      },
    ); // (B, n, d)
    const last = tf.gather(
      tf.slice(prefix, [0, start - 1, 0], [D, 1, d]),
      tf.tensor1d(index, 'int32'),
    );
    const cols = n > 1 ? tf.concat([last, tf.slice(rest, [0, 0, 0], [B, n - 1, d])], 1) : last;
    return tf.reshape(cols, [B * n, d]);
  } finally {
    prefixCache.dispose();
    rowsCache?.dispose();
  }
}

/** Each row's group by its first `start` tokens (ids and mask): the first row of each group, in
 * order of appearance, and every row's group number. */
export function prefixGroups(
  batch: TokenBatch,
  start: number,
): { first: Int32Array; index: Int32Array } {
  const { batch: B, length: T, ids, mask } = batch;
  const seen = new Map<string, number>();
  const first: number[] = [];
  const index = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let key = '';
    for (let t = 0; t < start; t++) key += `${ids[b * T + t]}:${mask[b * T + t]},`;
    let g = seen.get(key);
    if (g === undefined) {
      g = first.length;
      seen.set(key, g);
      first.push(b);
    }
    index[b] = g;
  }
  return { first: Int32Array.from(first), index };
}
