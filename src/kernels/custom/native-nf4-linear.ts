import type { NamedAttrMap, TensorInfo } from '../tf.js';
import * as tf from '../tf.js';
import { type NativeForwardCall, registerNativeForward } from './native-forward.js';
import { sizeOf } from './wasm-heap.js';

/**
 * `TroupeNF4Linear` {x [..., in]} → y [..., out] = x·Qᵀ with Q [out, in] a frozen NF4 matrix
 * (QLoRA's base weight, src/policy/quantize/nf4.ts) dequantised inside the native matmul, a tile
 * of rows at a time (native/nf4.c nf4Linear): no fp32 copy of Q exists. The matrix rides in the
 * kernel's attributes, not as a tensor: it is not a tfjs tensor at all (its bytes live outside the
 * backend's memory, 4.127 bits a weight), and it has no gradient. The gradient is dx only:
 * `TroupeNF4LinearGradX` {dy [..., out]} → dx [..., in] = dy·Q, the same tiles (nf4LinearGradX).
 */
export const NF4_LINEAR = 'TroupeNF4Linear';
export const NF4_LINEAR_GRAD_X = 'TroupeNF4LinearGradX';

/** An NF4 matrix [out, in] with double-quantised statistics, as native/nf4.c reads it. */
export interface NF4Matrix {
  readonly shape: readonly [number, number];
  readonly codes: Uint8Array;
  readonly absmaxCodes: Uint8Array;
  readonly absmaxScale: Float32Array;
  /** The 256 values absmaxCodes index (bitsandbytes' dynamic map). */
  readonly absmaxCode: Float32Array;
  readonly offset: number;
}

interface NF4Attrs {
  readonly weight: NF4Matrix;
  /** Rows of Q per dequantised tile; 0 = native/nf4.c's choice (about 4 MB). */
  readonly tileRows: number;
}

let gradientRegistered = false;

/** The forward (x·Qᵀ) or dx (dy·Q) kernel body: Q's tiles dequantised inside native/nf4.c. */
function nf4Kernel(forward: boolean) {
  return ({ inputs, attrs, addon, s }: NativeForwardCall<NF4Attrs>): TensorInfo => {
    const g = forward ? inputs.x : inputs.dy;
    const q = attrs.weight;
    const [outDim, inDim] = q.shape;
    const rows = sizeOf(g.shape) / (forward ? inDim : outDim);
    const r = s.output([...g.shape.slice(0, -1), forward ? outDim : inDim]);
    if (rows > 0) {
      const call = forward ? addon.nf4Linear : addon.nf4LinearGradX;
      call.call(
        addon,
        s.view(g),
        q.codes,
        q.absmaxCodes,
        q.absmaxScale,
        q.absmaxCode,
        q.offset,
        rows,
        inDim,
        outDim,
        attrs.tileRows,
        r.values(),
      );
    }
    return r.info;
  };
}

/** Register both kernels for `tfBackend` (wasm or cpu) when the addon is built. */
export function installNativeNF4Linear(tfBackend: string): string[] {
  const line = registerNativeForward(
    tfBackend,
    NF4_LINEAR,
    'native, dequantised by tiles',
    nf4Kernel(true),
  );
  if (line.length === 0) return [];
  registerNativeForward(tfBackend, NF4_LINEAR_GRAD_X, 'dx', nf4Kernel(false));
  if (!gradientRegistered) {
    gradientRegistered = true;
    tf.registerGradient({
      kernelName: NF4_LINEAR,
      inputsToSave: [],
      gradFunc: (dy, _saved, attrs) => ({
        x: () =>
          tf.engine().runKernel(NF4_LINEAR_GRAD_X, { dy: dy as tf.Tensor }, attrs) as tf.Tensor,
      }),
    });
  }
  return line;
}

/** Whether x·Qᵀ runs as the native NF4 kernel on the active backend. */
export function nativeNF4Available(): boolean {
  return tf.getKernel(NF4_LINEAR, tf.getBackend()) !== undefined;
}

/**
 * x·Qᵀ through the native NF4 kernel (x [..., in], Q [out, in] → [..., out]); undefined where
 * it is not registered (no addon, or another backend). `tileRows` 0 lets the kernel choose.
 */
export function nativeNF4Linear(x: tf.Tensor, q: NF4Matrix, tileRows = 0): tf.Tensor | undefined {
  if (x.dtype !== 'float32' || x.shape[x.rank - 1] !== q.shape[1] || !nativeNF4Available())
    return undefined;
  const attrs = { weight: q, tileRows } as unknown as NamedAttrMap;
  return tf.engine().runKernel(NF4_LINEAR, { x }, attrs) as tf.Tensor;
}
