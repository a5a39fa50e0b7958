import type { NamedAttrMap } from '../tf.js';
import * as tf from '../tf.js';
import { registerNativeForward } from './native-forward.js';
import { sizeOf } from './wasm-heap.js';

/**
 * `TroupeW16Linear` {x [..., in], b? [out]} → y [..., out] = x·W + b with W [in, out] a frozen
 * weight stored as bfloat16 bits (a generator's or a frozen reference / reward model's, under
 * precision bf16: src/policy/model/bf16-weights.ts), read as it is by the native kernel
 * (native/bf16.c bf16LinearW): half the bytes of an fp32 weight held and read, fp32 sums. The
 * matrix rides in the kernel's attributes, like NF4's (native-nf4-linear.ts): it lives outside
 * the backend's memory. Forward only: such a weight is never trained, and the kernel has no
 * gradient.
 */
export const W16_LINEAR = 'TroupeW16Linear';

/** Columns per panel of the layout bf16LinearW reads. */
export const W16_PANEL = 32;

/** W [in, out] as bf16 bits in panels of 32 columns: [⌈out/32⌉][in][32], columns past `out` zero. */
export interface W16Matrix {
  readonly shape: readonly [number, number];
  readonly bits: Uint16Array;
}

/** Elements of the panels of a W [inDim, outDim]. */
export function w16Elements(inDim: number, outDim: number): number {
  return inDim * Math.ceil(outDim / W16_PANEL) * W16_PANEL;
}

/** A buffer for the panels of W [inDim, outDim], of a whole number of float32s. */
export function w16Buffer(inDim: number, outDim: number): Uint16Array {
  const n = w16Elements(inDim, outDim);
  return new Uint16Array(new ArrayBuffer(Math.ceil(n / 2) * 4), 0, n);
}

/** The panels' bytes as float32s (the native decoder block's parameter arrays). */
export function w16AsF32(w: W16Matrix): Float32Array {
  return new Float32Array(w.bits.buffer, w.bits.byteOffset, Math.ceil(w.bits.length / 2));
}

/** Register `TroupeW16Linear` for `tfBackend` (wasm or cpu) when the addon is built. */
export function installNativeW16Linear(tfBackend: string): string[] {
  return registerNativeForward<{ weight: W16Matrix }>(
    tfBackend,
    W16_LINEAR,
    'native, bf16 weights',
    ({ inputs, attrs, addon, s }) => {
      const { x, b } = inputs;
      const [inDim, outDim] = attrs.weight.shape;
      const rows = sizeOf(x.shape) / inDim;
      const y = s.output([...x.shape.slice(0, -1), outDim]);
      if (rows > 0) {
        const bias = b ? s.view(b) : new Float32Array(0);
        addon.bf16LinearW(s.view(x), attrs.weight.bits, bias, rows, inDim, outDim, y.values());
      }
      return y.info;
    },
  );
}

/** Whether x·W for a bf16-stored W runs as the native kernel on the active backend. */
export function nativeW16Available(): boolean {
  return tf.getKernel(W16_LINEAR, tf.getBackend()) !== undefined;
}

/** W's values as float32 [in, out] (exact: every bf16 value is a float32). */
export function widenW16(w: W16Matrix): Float32Array {
  const [inDim, outDim] = w.shape;
  const out = new Float32Array(inDim * outDim);
  const u = new Uint32Array(out.buffer);
  const bits = w.bits;
  for (let p = 0; p * W16_PANEL < outDim; p++) {
    const cols = Math.min(W16_PANEL, outDim - p * W16_PANEL);
    for (let k = 0; k < inDim; k++) {
      const from = (p * inDim + k) * W16_PANEL;
      const to = k * outDim + p * W16_PANEL;
      for (let j = 0; j < cols; j++) u[to + j] = bits[from + j] << 16;
    }
  }
  return out;
}

/**
 * x·W (+ b) for x [..., in] and a bf16-stored W [in, out] → [..., out]: the native kernel, else
 * (no addon, or another backend) a transient fp32 copy of W through tfjs' matMul.
 */
export function w16Linear(x: tf.Tensor, w: W16Matrix, b?: tf.Tensor): tf.Tensor {
  const [inDim, outDim] = w.shape;
  if (x.dtype === 'float32' && x.shape[x.rank - 1] === inDim && nativeW16Available()) {
    const bias = b && b.rank !== 1 ? tf.reshape(b, [b.size]) : b;
    const inputs: tf.NamedTensorMap = bias ? { x, b: bias } : { x };
    const attrs = { weight: w } as unknown as NamedAttrMap;
    return tf.engine().runKernel(W16_LINEAR, inputs, attrs) as tf.Tensor;
  }
  return tf.tidy(() => {
    const wt = tf.tensor(widenW16(w), [inDim, outDim]);
    const y = tf.reshape(tf.matMul(tf.reshape(x, [-1, inDim]), wt), [
      ...x.shape.slice(0, -1),
      outDim,
    ]);
    return b ? tf.add(y, b) : y;
  });
}
