import { bits } from './tensor32.js';

/**
 * Layout changes between Troupe's [in, out] matrices and Hugging Face's. All copy uint32 bits,
 * so every value (NaN payloads included) survives exactly.
 */

/** [rows, cols] → [cols, rows], in 32×32 tiles so both sides stay in cache. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  const src = bits(data);
  const dst = bits(out);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
  return out;
}

/** Parts [rows, w_k] side by side → [rows, Σw_k] (GPT-2's fused c_attn from q, k, v). */
export function concatColumns(parts: Float32Array[], widths: number[], rows: number): Float32Array {
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  const dst = bits(out);
  let col = 0;
  parts.forEach((part, k) => {
    const w = widths[k];
    const src = bits(part);
    for (let r = 0; r < rows; r++) dst.set(src.subarray(r * w, (r + 1) * w), r * total + col);
    col += w;
  });
  return out;
}

/** [rows, Σw_k] → parts [rows, w_k]: the inverse of `concatColumns`. */
export function splitColumns(whole: Float32Array, widths: number[], rows: number): Float32Array[] {
  const total = widths.reduce((a, b) => a + b, 0);
  const src = bits(whole);
  let col = 0;
  return widths.map((w) => {
    const part = new Float32Array(rows * w);
    const dst = bits(part);
    for (let r = 0; r < rows; r++)
      dst.set(src.subarray(r * total + col, r * total + col + w), r * w);
    col += w;
    return part;
  });
}

/** Bitwise equality (NaN equals itself, -0 differs from 0). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = bits(a);
  const y = bits(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
