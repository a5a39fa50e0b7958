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

/**
 * `TroupeLinear3` {x [..., in], w0, w1, w2 [in, out_i], b0?, b1?, b2? [out_i]} → [y0, y1, y2],
 * y_i [..., out_i] = x·W_i + b_i: three projections of one x under bf16 precision in one native
 * call (bf16Linear3), x rounded to bf16 and packed once instead of three times (the attention's
 * q, k and v). Each y_i has the bits TroupeLinear gives it. Its gradient is TroupeLinearGrad per
 * output (dx the fp32 sum of the three), the gradients the three TroupeLinear would get.
 */
export const LINEAR3 = 'TroupeLinear3';

/**
 * `TroupeLinear3Grad` {x, dy0, dy1, dy2, w0, w1, w2} → [dx0, dx1, dx2, dW0, dW1, dW2, db0, db1,
 * db2]: TroupeLinear3's gradients in one native call (bf16Linear3Backward), each what
 * TroupeLinearGrad gives for its output, with xᵀ rounded and packed once for the three dW.
 */
export const LINEAR3_GRAD = 'TroupeLinear3Grad';

/** A kernel function over the inputs by name and the backend (tfjs hands both in one object). */
const kernel = (
  f: (inputs: Record<string, TensorInfo>, backend: unknown) => TensorInfo | TensorInfo[],
): KernelFunc =>
  (({ inputs, backend }: { inputs: Record<string, TensorInfo>; backend: unknown }) =>
    f(inputs, backend)) as unknown as KernelFunc;

let gradientRegistered = false;
let gradient3Registered = false;

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
      kernelFunc: kernel((inputs, backend) => {
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
      }),
    });
  }
  tf.registerKernel({
    kernelName: LINEAR,
    backendName,
    kernelFunc: kernel((inputs, backend) => {
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
    }),
  });
  const linear3 = addon.bf16Linear3;
  if (linear3 && backward) {
    tf.registerKernel({
      kernelName: LINEAR3,
      backendName,
      kernelFunc: kernel((inputs, backend) => {
        const { x } = inputs;
        const ws = [inputs.w0, inputs.w1, inputs.w2];
        const bs = [inputs.b0, inputs.b1, inputs.b2];
        const inDim = ws[0].shape[0];
        const rows = sizeOf(x.shape) / inDim;
        const s = storageFor(backendName, backend);
        const ys = ws.map((w) => s.output([...x.shape.slice(0, -1), w.shape[1]]));
        // views after the last output (a wasm allocation can move the heap)
        const none = new Float32Array(0);
        const b = bs.map((t) => (t ? s.view(t) : none));
        const w = ws.map((t) => s.view(t));
        const y = ys.map((t) => t.values());
        linear3.call(
          addon,
          s.view(x),
          rows,
          inDim,
          w[0],
          b[0],
          y[0],
          w[1],
          b[1],
          y[1],
          w[2],
          b[2],
          y[2],
        );
        return ys.map((t) => t.info);
      }),
    });
    const backward3 = addon.bf16Linear3Backward;
    if (backward3) {
      tf.registerKernel({
        kernelName: LINEAR3_GRAD,
        backendName,
        kernelFunc: kernel((inputs, backend) => {
          const { x } = inputs;
          const ws = [inputs.w0, inputs.w1, inputs.w2];
          const dys = [inputs.dy0, inputs.dy1, inputs.dy2];
          const inDim = ws[0].shape[0];
          const rows = sizeOf(x.shape) / inDim;
          const s = storageFor(backendName, backend);
          const dx = ws.map(() => s.output([...x.shape]));
          const dw = ws.map((w) => s.output([...w.shape]));
          const db = ws.map((w) => s.output([w.shape[1]]));
          // views after the last output (a wasm allocation can move the heap)
          const v = (ts: TensorInfo[]) => ts.map((t) => s.view(t));
          const out = (ts: typeof dx) => ts.map((t) => t.values());
          backward3.call(addon, s.view(x), rows, inDim, v(dys), v(ws), out(dx), out(dw), out(db));
          return [...dx, ...dw, ...db].map((t) => t.info);
        }),
      });
    }
    if (!gradient3Registered) {
      gradient3Registered = true;
      tf.registerGradient({
        kernelName: LINEAR3,
        inputsToSave: ['x', 'w0', 'w1', 'w2'],
        gradFunc: (dy, saved) => {
          const [x, ...ws] = saved;
          const dys = dy as tf.Tensor[];
          // made here, not in the thunks (lean-backprop runs each thunk in a tidy of its own)
          if (tf.getKernel(LINEAR3_GRAD, tf.getBackend()) !== undefined) {
            const [dx0, dx1, dx2, dW0, dW1, dW2, db0, db1, db2] = tf
              .engine()
              .runKernel(
                LINEAR3_GRAD,
                { x, dy0: dys[0], dy1: dys[1], dy2: dys[2], w0: ws[0], w1: ws[1], w2: ws[2] },
                {},
              ) as tf.Tensor[];
            const dx = tf.addN([dx0, dx1, dx2]);
            tf.dispose([dx0, dx1, dx2]);
            return {
              x: () => dx,
              ...{ w0: () => dW0, w1: () => dW1, w2: () => dW2 },
              ...{ b0: () => db0, b1: () => db1, b2: () => db2 },
            };
          }
          // (the BatchMatMul and Sum where TroupeLinearGrad is unregistered)
          const fused = tf.getKernel(LINEAR_GRAD, tf.getBackend()) !== undefined;
          const inDim = x.shape[x.rank - 1] as number;
          const g = ws.map((w, i) => {
            if (fused)
              return tf.engine().runKernel(LINEAR_GRAD, { dy: dys[i], x, w }, {}) as tf.Tensor[];
            const d2 = tf.reshape(dys[i], [-1, w.shape[1] as number]);
            return [
              tf.reshape(tf.matMul(d2, w, false, true), x.shape),
              tf.matMul(tf.reshape(x, [-1, inDim]), d2, true, false),
              tf.sum(d2, 0),
            ];
          });
          const dx = tf.addN(g.map((t) => t[0]));
          return {
            x: () => dx,
            w0: () => g[0][1],
            w1: () => g[1][1],
            w2: () => g[2][1],
            b0: () => g[0][2],
            b1: () => g[1][2],
            b2: () => g[2][2],
          };
        },
      });
    }
  }
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
    ...(linear3 && backward ? [`${tfBackend}:${LINEAR3}(native)`] : []),
    ...(linear3 && backward && addon.bf16Linear3Backward
      ? [`${tfBackend}:${LINEAR3_GRAD}(native)`]
      : []),
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

/**
 * x·W_i (+ b_i) for three weights of one x as one native kernel (TroupeLinear3) where it can take
 * them: registered for the active backend, bf16 products at x's rows, everything float32, W_i
 * [in, out_i], every b_i present ([out_i]) or none. undefined otherwise (run three linears).
 */
export function nativeLinear3(
  x: tf.Tensor,
  w: readonly [tf.Tensor, tf.Tensor, tf.Tensor],
  b: readonly [tf.Tensor | undefined, tf.Tensor | undefined, tf.Tensor | undefined],
): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  const inDim = x.shape[x.rank - 1] as number;
  const biased = b.filter((t) => t !== undefined).length;
  if (
    x.dtype !== 'float32' ||
    x.size === 0 ||
    !bf16Product(x.size / inDim) ||
    !w.every((t) => t.dtype === 'float32' && t.rank === 2 && t.shape[0] === inDim) ||
    (biased !== 0 && biased !== 3) ||
    !b.every((t, i) => !t || (t.dtype === 'float32' && t.size === w[i].shape[1])) ||
    tf.getKernel(LINEAR3, tf.getBackend()) === undefined
  ) {
    return undefined;
  }
  const inputs: tf.NamedTensorMap = { x, w0: w[0], w1: w[1], w2: w[2] };
  b.forEach((t, i) => {
    // a bias of another shape ([1, out]) as [out], so its gradient comes back in its own shape
    if (t) inputs[`b${i}`] = t.rank !== 1 ? tf.reshape(t, [t.size]) : t;
  });
  const [y0, y1, y2] = tf.engine().runKernel(LINEAR3, inputs, {}) as tf.Tensor[];
  return [y0, y1, y2];
}
