import { TroupeError } from '../../errors.js';
import { nativeKernels } from '../../kernels/native.js';

/**
 * 4-bit NormalFloat with double quantisation (QLoRA, Dettmers et al. 2023, §3), laid out as
 * bitsandbytes' `quantize_4bit(A, blocksize=64, compress_statistics=True, quant_type='nf4')`
 * lays it out, so that the numbers are the ones a bitsandbytes user gets:
 *
 *   w [n] (a matrix flattened row-major)   blocks of 64 consecutive values, absmax_b = max |w|
 *   code_i = argmin_k |w_i·(1/absmax_b) − NF4[k]|   4 bits; two per byte, the first in the high nibble
 *   offset = mean_b absmax_b                          one fp32 (double quantisation, eq. 6)
 *   a_b = absmax_b − offset                           blocks of 256: scale_c = max |a_b|,
 *   absmaxCode_b = argmin_k |a_b·(1/scale_c) − DYN[k]| 8 bits, DYN = bitsandbytes' signed dynamic map
 *
 *   dequantised: ŵ_i = NF4[code_i] · (DYN[absmaxCode_b]·scale_c + offset)
 *
 * Memory: 4 bits a weight + 8 bits per 64 (0.125) + 32 bits per 64·256 — 4.127 bits, the paper's
 * figure. A block whose values are all 0 has absmax 0 and every code 7 (NF4's exact 0); bitsandbytes
 * would divide by zero there. Ties (|x − c| equal for two codes) take the lower index, as argmin.
 */

/** The 16 NF4 values (bitsandbytes csrc, `get_4bit_type('nf4')`): index 7 is exactly 0. */
export const NF4_CODE: Float32Array = Float32Array.of(
  -1.0,
  -0.6961928009986877,
  -0.5250730514526367,
  -0.39491748809814453,
  -0.28444138169288635,
  -0.18477343022823334,
  -0.09105003625154495,
  0.0,
  0.07958029955625534,
  0.16093020141124725,
  0.24611230194568634,
  0.33791524171829224,
  0.44070982933044434,
  0.5626170039176941,
  0.7229568362236023,
  1.0,
);

/** Values per absmax block of the 4-bit codes (bitsandbytes' default and QLoRA's). */
export const NF4_BLOCK = 64;
/** absmax values per block of the 8-bit double quantisation. */
export const ABSMAX_BLOCK = 256;

/** A matrix quantised to NF4 with double-quantised absmax statistics (see the file comment). */
export interface NF4Tensor {
  /** [rows, cols] of the quantised matrix (a projection is stored [out, in], as HF and bitsandbytes). */
  readonly shape: readonly [number, number];
  /** ⌈n/2⌉ bytes: value 2j in the high nibble of byte j, value 2j + 1 in the low one. */
  readonly codes: Uint8Array;
  /** ⌈n/64⌉ 8-bit indices into DYNAMIC_CODE, one per 64-block. */
  readonly absmaxCodes: Uint8Array;
  /** ⌈⌈n/64⌉/256⌉ fp32 scales of the absmax statistics, one per 256 of them. */
  readonly absmaxScale: Float32Array;
  /** Mean of the blocks' absmax, subtracted before their 8-bit quantisation. */
  readonly offset: number;
}

/**
 * bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for
 * i = 0..6, the 2^i midpoints of `linspace(0.1, 1, 2^i + 1)` scaled by ±10^(i−6), plus 0 and 1,
 * sorted (index 127 is 0, 255 is 1). Computed exactly (float64) and rounded once to fp32;
 * PyTorch's float32 `linspace` leaves 42 of the 256 values 1 ulp away from that, and which ones
 * depends on its vector width (test/policy/quantize.test.ts compares with the values it gives).
 */
function dynamicMap(): Float32Array {
  const data: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const steps = 2 ** i + 1;
    const at = (k: number) => 0.1 + (0.9 * k) / (steps - 1);
    for (let k = 0; k + 1 < steps; k++) {
      const mean = (at(k) + at(k + 1)) / 2;
      data.push(10 ** (i - 6) * mean, -(10 ** (i - 6)) * mean);
    }
  }
  return Float32Array.from(data.sort((x, y) => x - y));
}

/** The 256 values of the 8-bit absmax code (see `dynamicMap`). */
export const DYNAMIC_CODE: Float32Array = dynamicMap();

/** Midpoints between consecutive codes: x's nearest code is the number of midpoints below x. */
function midpoints(code: Float32Array): Float64Array {
  const m = new Float64Array(code.length - 1);
  for (let k = 0; k + 1 < code.length; k++) m[k] = (code[k] + code[k + 1]) / 2;
  return m;
}
const NF4_MID = midpoints(NF4_CODE);
const DYNAMIC_MID = midpoints(DYNAMIC_CODE);

/** argmin_k |x − code[k]|, lower index on a tie: binary search over the midpoints. */
function nearest(mid: Float64Array, x: number): number {
  let lo = 0;
  let hi = mid.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (x > mid[m]) lo = m + 1;
    else hi = m;
  }
  return lo;
}

/**
 * Block-wise absmax quantisation of `x` against `code`: per block, absmax = max |x| (fp32) and
 * each value's index of the code nearest x·(1/absmax) (fp32, clamped to [−1, 1]), as
 * bitsandbytes' CPU kernels compute it. `put(i, k)` receives value i's index.
 */
function blockwise(
  x: ArrayLike<number>,
  block: number,
  mid: Float64Array,
  zero: number,
  put: (i: number, k: number) => void,
): Float32Array {
  const n = x.length;
  const absmax = new Float32Array(Math.ceil(n / block));
  for (let b = 0; b < absmax.length; b++) {
    const end = Math.min(n, (b + 1) * block);
    let m = 0;
    for (let i = b * block; i < end; i++) m = Math.max(m, Math.abs(x[i]));
    absmax[b] = m;
    if (m === 0) {
      for (let i = b * block; i < end; i++) put(i, zero);
      continue;
    }
    const inv = Math.fround(1 / Math.fround(m));
    for (let i = b * block; i < end; i++) {
      const s = Math.fround(x[i] * inv);
      put(i, nearest(mid, Math.min(1, Math.max(-1, s))));
    }
  }
  return absmax;
}

/**
 * Quantise a [rows, cols] float32 matrix (row-major) to NF4 with double-quantised statistics.
 * The 4-bit codes come from the native addon where it is built (`native: false`: always
 * TypeScript; the two give the same codes), the statistics' double quantisation from TypeScript.
 */
export function quantizeNF4(
  data: Float32Array,
  shape: readonly [number, number],
  opts: { readonly native?: boolean } = {},
): NF4Tensor {
  const [rows, cols] = shape;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1)
    throw new TroupeError('BAD_ARGUMENT', `quantizeNF4: shape [${shape}] must be two sizes ≥ 1`);
  if (data.length !== rows * cols)
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `quantizeNF4: ${data.length} values for shape [${rows}, ${cols}] (${rows * cols})`,
    );
  const codes = new Uint8Array(Math.ceil(data.length / 2));
  let absmax: Float32Array;
  const native = nativeKernels();
  if (native.available && opts.native !== false) {
    // the same arithmetic in C (native/nf4.c), ~20× faster: a 0.5 B model loads in seconds
    absmax = new Float32Array(Math.ceil(data.length / NF4_BLOCK));
    native.addon.nf4QuantizeBlocks(data, codes, absmax);
  } else {
    absmax = blockwise(data, NF4_BLOCK, NF4_MID, 7, (i, k) => {
      codes[i >> 1] |= i & 1 ? k : k << 4;
    });
  }
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = Math.fround(sum / absmax.length); // a float64 sum, rounded once
  const centred = absmax.map((a) => a - offset); // fp32, as bitsandbytes' `_absmax - offset`
  const absmaxCodes = new Uint8Array(absmax.length);
  const absmaxScale = blockwise(centred, ABSMAX_BLOCK, DYNAMIC_MID, 127, (i, k) => {
    absmaxCodes[i] = k;
  });
  return { shape: [rows, cols], codes, absmaxCodes, absmaxScale, offset };
}

/** Block b's dequantised absmax: DYN[absmaxCode_b]·scale_⌊b/256⌋ + offset (fp32). */
export function blockAbsmax(q: NF4Tensor, b: number): number {
  const f = Math.fround;
  return f(f(DYNAMIC_CODE[q.absmaxCodes[b]] * q.absmaxScale[b >> 8]) + q.offset);
}

/** The dequantised matrix [rows, cols], row-major (fp32). */
export function dequantizeNF4(q: NF4Tensor): Float32Array {
  const n = q.shape[0] * q.shape[1];
  const out = new Float32Array(n);
  for (let b = 0; b * NF4_BLOCK < n; b++) {
    const a = blockAbsmax(q, b);
    const end = Math.min(n, (b + 1) * NF4_BLOCK);
    for (let i = b * NF4_BLOCK; i < end; i++) {
      const byte = q.codes[i >> 1];
      out[i] = NF4_CODE[i & 1 ? byte & 15 : byte >> 4] * a;
    }
  }
  return out;
}

/** Bytes an NF4 tensor holds (codes, 8-bit statistics, their scales and the offset). */
export function nf4Bytes(q: NF4Tensor): number {
  return q.codes.length + q.absmaxCodes.length + q.absmaxScale.byteLength + 4;
}
