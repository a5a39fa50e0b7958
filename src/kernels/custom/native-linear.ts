import { nativeKernels } from '../native.js';
import { bf16Product } from '../precision.js';
import type { KernelFunc, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { storageFor } from './native-batch-matmul.js';
import { sizeOf } from './wasm-heap.js';

/**
 * `TroupeLinear` {x [..., in], w [in, out], b? [out]} → y [..., out] = x·W + b, one native call
 * on wasm and cpu (native/troupe_native.c linearForward: sgemv, the small-M kernel or sgemm, then
 * the bias) for what tfjs runs as reshape, matmul, add, reshape. Decoding runs six projections
 * per layer, and per-kernel dispatch is most of a batch-1 decoding step. The gradient is the
 * usual dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ dy (through the native BatchMatMul and Sum). Under bf16
 * precision (precision.ts) x·W and both gradient products run on the bf16 kernel (native/bf16.c:
 * bf16Linear, bf16GemmBatched) with fp32 sums; the bias and db stay fp32, and the three
 * gradients are one call (`TroupeLinearGrad`).
 */
export const LINEAR = 'TroupeLinear';

/**
 * `TroupeLinearGrad` {dy [..., out], x [..., in], w [in, out]} → [dx (x's shape), dW [in, out],
 * db [out]]: TroupeLinear's gradients under bf16 precision in one native call
 * (bf16LinearBackward): dx = dy·Wᵀ and dW = xᵀ·dy, the products the BatchMatMul kernel computes
 * there, and db = Σ dy summed in fp32 while dW's product packs dy. Where the model ran two
 * BatchMatMul and a Sum, each reading dy from L3 or memory again. fp32 precision keeps those three.
 */
export const LINEAR_GRAD = 'TroupeLinearGrad';

let gradientRegistered = false;

/** Register `TroupeLinear` for `tfBackend` (wasm or cpu) when the addon is built. */
export function installNativeLinear(tfBackend: string): string[] {
  const native = nativeKernels();
  if (!native.available || (tfBackend !== 'wasm' && tfBackend !== 'cpu')) return [];
  const addon = native.addon;
  const backendName = tfBackend;
  const backward = addon.bf16LinearBackward;
  if (backward) {
    tf.registerKernel({
      kernelName: LINEAR_GRAD,
      backendName,
      kernelFunc: (({
        inputs,
        backend,
      }: {
        inputs: Record<string, TensorInfo>;
        backend: unknown;
      }) => {
        const { dy, x, w } = inputs;
        const [inDim, outDim] = w.shape;
        const s = storageFor(backendName, backend);
        const dx = s.output([...x.shape]);
        const dw = s.output([inDim, outDim]);
        const db = s.output([outDim]);
        // views after the last output (a wasm allocation can move the heap)
        const rows = sizeOf(x.shape) / inDim;
        backward.call(
          addon,
          s.view(dy),
          s.view(x),
          s.view(w),
          rows,
          inDim,
          outDim,
          dx.values(),
          dw.values(),
          db.values(),
        );
        return [dx.info, dw.info, db.info];
      }) as unknown as KernelFunc,
    });
  }
  tf.registerKernel({
    kernelName: LINEAR,
    backendName,
    kernelFunc: (({
      inputs,
      backend,
    }: {
      inputs: Record<string, TensorInfo>;
      backend: unknown;
    }) => {
      const { x, w, b } = inputs;
      const [inDim, outDim] = w.shape;
      const rows = sizeOf(x.shape) / inDim;
      const s = storageFor(backendName, backend);
      const y = s.output([...x.shape.slice(0, -1), outDim]);
      if (rows > 0) {
        const bias = b ? s.view(b) : new Float32Array(0);
        const linear = bf16Product(rows) ? addon.bf16Linear : addon.linearForward;
        linear(s.view(x), s.view(w), bias, rows, inDim, outDim, y.values());
      }
      return y.info;
    }) as unknown as KernelFunc,
  });
  if (!gradientRegistered) {
    gradientRegistered = true;
    tf.registerGradient({
      kernelName: LINEAR,
      inputsToSave: ['x', 'w'],
      gradFunc: (dy, saved) => {
        const [x, w] = saved;
        const [inDim, outDim] = w.shape as [number, number];
        const rows = x.size / inDim;
        // bf16: the three in one call, made here (not in a thunk: lean-backprop runs each thunk
        // in a tidy of its own, which would dispose the other two); an unused db (no bias) is
        // disposed with the backward pass's scope
        if (
          rows > 0 &&
          bf16Product(Math.min(rows, inDim)) &&
          tf.getKernel(LINEAR_GRAD, tf.getBackend()) !== undefined
        ) {
          const [dx, dW, db] = tf
            .engine()
            .runKernel(LINEAR_GRAD, { dy: dy as tf.Tensor, x, w }, {}) as tf.Tensor[];
          return { x: () => dx, w: () => dW, b: () => db };
        }
        const dy2 = () => tf.reshape(dy as tf.Tensor, [-1, outDim]);
        return {
          x: () => tf.reshape(tf.matMul(dy2(), w, false, true), x.shape),
          w: () => tf.matMul(tf.reshape(x, [-1, inDim]), dy2(), true, false),
          b: () => tf.sum(dy2(), 0),
        };
      },
    });
  }
  return [
    `${tfBackend}:${LINEAR}(native)`,
    ...(backward ? [`${tfBackend}:${LINEAR_GRAD}(native)`] : []),
  ];
}

/** x·W (+ b) as one native kernel where registered for the active backend; undefined otherwise. */
export function nativeLinear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor | undefined {
  if (
    x.dtype !== 'float32' ||
    w.dtype !== 'float32' ||
    w.rank !== 2 ||
    x.shape[x.rank - 1] !== w.shape[0] ||
    (b && (b.dtype !== 'float32' || b.size !== w.shape[1])) ||
    tf.getKernel(LINEAR, tf.getBackend()) === undefined
  ) {
    return undefined;
  }
  // a bias of another shape ([1, out]) as [out], so its gradient comes back in its own shape
  const bias = b && b.rank !== 1 ? tf.reshape(b, [b.size]) : b;
  const inputs: tf.NamedTensorMap = bias ? { x, w, b: bias } : { x, w };
  return tf.engine().runKernel(LINEAR, inputs, {}) as tf.Tensor;
}
