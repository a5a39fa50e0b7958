import { type NativeAddon, nativeKernels } from '../native.js';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { storageFor } from './native-batch-matmul.js';
import { sizeOf } from './wasm-heap.js';

/**
 * Row kernels of native/rows.c as tfjs kernels on wasm and cpu: attention's scaled, biased
 * softmax (forward and gradient) and the log-probability of a label with its log-sum-exp (the LM
 * loss; forward and the gradient of one vocabulary block). Each replaces a chain of tfjs kernels
 * (scale, add, max, sub, exp, sum, div; one-hot, gather) with one pass over the rows. The ops
 * below use them where registered, and the tfjs composite elsewhere (webgpu, no addon).
 */
export const SCALED_SOFTMAX = 'TroupeScaledSoftmax';
export const SCALED_SOFTMAX_GRAD = 'TroupeScaledSoftmaxGrad';
export const LOG_SOFTMAX_PICK = 'TroupeLogSoftmaxPick';
export const LOG_SOFTMAX_PICK_GRAD = 'TroupeLogSoftmaxPickGrad';
export const ROW_ENTROPY = 'TroupeRowEntropy';

type Backend = 'wasm' | 'cpu';
interface Args {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs: NamedAttrMap;
}

function kernel(name: string, backendName: Backend, f: (a: Args) => TensorInfo | TensorInfo[]) {
  return { kernelName: name, backendName, kernelFunc: f as unknown as KernelFunc };
}

function rowKernels(addon: NativeAddon, backendName: Backend): KernelConfig[] {
  return [
    // x: [G, H, R, C] (any leading split: G·H·R rows), bias: [G, R, C] or absent → y like x
    kernel(SCALED_SOFTMAX, backendName, ({ inputs, backend, attrs }) => {
      const { x, bias } = inputs;
      const { scale, groups, rows: R } = attrs as Record<string, number>;
      const C = x.shape[x.shape.length - 1];
      const H = sizeOf(x.shape) / (groups * R * C);
      const s = storageFor(backendName, backend);
      const y = s.output([...x.shape]);
      const none = new Float32Array(0);
      addon.scaledSoftmax(
        s.view(x),
        bias ? s.view(bias) : none,
        groups,
        H,
        R,
        C,
        scale,
        y.values(),
      );
      return y.info;
    }),
    kernel(SCALED_SOFTMAX_GRAD, backendName, ({ inputs, backend, attrs }) => {
      const { y, dy } = inputs;
      const C = y.shape[y.shape.length - 1];
      const s = storageFor(backendName, backend);
      const dx = s.output([...y.shape]);
      addon.scaledSoftmaxBackward(
        s.view(y),
        s.view(dy),
        sizeOf(y.shape) / C,
        C,
        (attrs as { scale: number }).scale,
        dx.values(),
      );
      return dx.info;
    }),
    // logits: [N, V], labels: [N] int32 → lp [N], lse [N]
    kernel(LOG_SOFTMAX_PICK, backendName, ({ inputs, backend }) => {
      const { logits, labels } = inputs;
      const [N, V] = logits.shape;
      const s = storageFor(backendName, backend);
      const lp = s.output([N]);
      const lse = s.output([N]);
      addon.logSoftmaxPick(s.view(logits), s.viewInt(labels), N, V, lp.values(), lse.values());
      return [lp.info, lse.info];
    }),
    // logits: [N, V], lse: [N] → H [N]
    kernel(ROW_ENTROPY, backendName, ({ inputs, backend }) => {
      const { logits, lse } = inputs;
      const [N, V] = logits.shape;
      const s = storageFor(backendName, backend);
      const H = s.output([N]);
      addon.rowEntropy(s.view(logits), s.view(lse), N, V, H.values());
      return H.info;
    }),
    // logits: [N, Vb] (columns offset … offset + Vb − 1), lse, labels, dy: [N] → g [N, Vb]
    kernel(LOG_SOFTMAX_PICK_GRAD, backendName, ({ inputs, backend, attrs }) => {
      const { logits, lse, labels, dy } = inputs;
      const [N, V] = logits.shape;
      const s = storageFor(backendName, backend);
      const g = s.output([N, V]);
      addon.logSoftmaxPickBackward(
        s.view(logits),
        s.view(lse),
        s.viewInt(labels),
        s.view(dy),
        N,
        V,
        (attrs as { offset: number }).offset,
        g.values(),
      );
      return g.info;
    }),
  ];
}

let gradientRegistered = false;

/** Register the row kernels for `tfBackend` (wasm or cpu) when the addon is built; their labels. */
export function installNativeRows(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  for (const k of rowKernels(native.addon, tfBackend)) tf.registerKernel(k);
  if (!gradientRegistered) {
    gradientRegistered = true;
    tf.registerGradient({
      kernelName: SCALED_SOFTMAX,
      inputsToSave: [],
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [y] = saved;
        const { scale, groups, rows } = attrs as unknown as Record<string, number>;
        const dz = (s: number) =>
          tf.engine().runKernel(SCALED_SOFTMAX_GRAD, { y, dy: dy as tf.Tensor }, { scale: s });
        return {
          x: () => dz(scale) as tf.Tensor,
          // the bias is broadcast over the heads: its gradient sums them
          bias: () => {
            const C = y.shape[y.rank - 1];
            return tf.sum(tf.reshape(dz(1) as tf.Tensor, [groups, -1, rows, C]), 1); // [G, R, C]
          },
        };
      },
    });
  }
  return [SCALED_SOFTMAX, LOG_SOFTMAX_PICK].map((k) => `${tfBackend}:${k}(native)`);
}

/** Whether the active backend has the row kernel `name`. */
export function hasRowKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/**
 * softmax(scale·x + bias) over the last axis, the bias broadcast over the heads:
 *   x: [G, H, R, C] (as any shape of that size)   bias: [G, R, C] or undefined (R = 1)
 * One native kernel where registered; the tfjs composite otherwise.
 */
export function scaledSoftmax(
  x: tf.Tensor,
  scale: number,
  bias?: tf.Tensor,
  groups = 1,
): tf.Tensor {
  if (hasRowKernel(SCALED_SOFTMAX) && x.dtype === 'float32') {
    const C = x.shape[x.rank - 1] as number;
    const rows = bias ? bias.size / groups / C : 1;
    // the bias as [G, R, C], so its gradient (summed over the heads) has the kernel input's shape
    const inputs: tf.NamedTensorMap = bias
      ? { x, bias: tf.reshape(bias, [groups, rows, C]) }
      : { x };
    return tf.engine().runKernel(SCALED_SOFTMAX, inputs, { scale, groups, rows }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const scaled = tf.mul(x, scale);
    if (!bias) return tf.softmax(scaled);
    const C = x.shape[x.rank - 1] as number;
    const R = bias.size / groups / C;
    const z = tf.add(tf.reshape(scaled, [groups, -1, R, C]), tf.reshape(bias, [groups, 1, R, C]));
    return tf.reshape(tf.softmax(z), x.shape);
  });
}

/**
 * log-softmax of each row's label and the row's log-sum-exp:
 *   logits: [N, V]  labels: [N] int32  →  lp: [N] = z[label] − lse,  lse: [N]
 * Not differentiable by itself: callers put it inside a customGrad with `logSoftmaxPickGrad`.
 */
export function logSoftmaxPick(logits: tf.Tensor, labels: tf.Tensor): [tf.Tensor, tf.Tensor] {
  if (hasRowKernel(LOG_SOFTMAX_PICK)) {
    return tf.engine().runKernel(LOG_SOFTMAX_PICK, { logits, labels }, {}) as [
      tf.Tensor,
      tf.Tensor,
    ];
  }
  return tf.tidy(() => {
    const [N, V] = logits.shape as [number, number];
    const m = tf.max(logits, 1, true); // (N, 1)
    const lse = tf.add(m, tf.log(tf.sum(tf.exp(tf.sub(logits, m)), 1, true))); // (N, 1)
    const flat = tf.add(tf.mul(tf.range(0, N, 1, 'int32'), tf.scalar(V, 'int32')), labels);
    const picked = tf.gather(tf.reshape(logits, [N * V]), flat); // (N,) logit[label]
    const lseRow = tf.reshape(lse, [N]);
    return [tf.sub(picked, lseRow), lseRow];
  });
}

/**
 * The entropy H = −Σ_j p_j·log p_j of softmax(logits) per row, from the rows' log-sum-exp
 * (logSoftmaxPick's): one native pass where registered, the log-softmax's tfjs ops elsewhere.
 * No gradient (callers compute it inside their own custom gradient).
 *   logits: [N, V]   lse: [N]  →  H [N]
 */
export function rowEntropy(logits: tf.Tensor, lse: tf.Tensor): tf.Tensor {
  if (hasRowKernel(ROW_ENTROPY)) {
    return tf.engine().runKernel(ROW_ENTROPY, { logits, lse }, {}) as tf.Tensor;
  }
  return tf.tidy(() => {
    const q = tf.sub(logits, tf.reshape(lse, [-1, 1]));
    return tf.neg(tf.sum(tf.mul(tf.exp(q), q), 1));
  });
}

/**
 * The gradient of Σ_r dy[r]·lp[r] with respect to a block of logit columns:
 *   logits: [N, Vb] (columns offset … offset + Vb − 1)  lse, dy: [N]  labels: [N] int32
 *   → dy·(onehot(label − offset) − exp(z − lse))  [N, Vb]
 */
export function logSoftmaxPickGrad(
  logits: tf.Tensor,
  lse: tf.Tensor,
  labels: tf.Tensor,
  dy: tf.Tensor,
  offset = 0,
): tf.Tensor {
  if (hasRowKernel(LOG_SOFTMAX_PICK_GRAD)) {
    return tf
      .engine()
      .runKernel(LOG_SOFTMAX_PICK_GRAD, { logits, lse, labels, dy }, { offset }) as tf.Tensor;
  }
  return tf.tidy(() => {
    const [N, V] = logits.shape as [number, number];
    const p = tf.exp(tf.sub(logits, tf.reshape(lse, [N, 1])));
    const onehot = tf.oneHot(offset === 0 ? labels : tf.sub(labels, tf.scalar(offset, 'int32')), V);
    return tf.mul(tf.sub(onehot, p), tf.reshape(dy, [N, 1]));
  });
}
