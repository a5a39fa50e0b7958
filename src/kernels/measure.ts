import * as tf from './tf.js';

export interface MatMulShape {
  /** Shape of A as stored (before any transpose). */
  readonly a: readonly number[];
  readonly b: readonly number[];
  readonly transposeA?: boolean;
  readonly transposeB?: boolean;
}

export interface MatMulTiming {
  readonly gflops: number;
  readonly msPerCall: number;
  readonly calls: number;
}

/** 2·M·N·K·batch floating-point operations of one matMul of this shape. */
export function matMulFlops(s: MatMulShape): number {
  const ra = s.a.length;
  const rb = s.b.length;
  const M = s.transposeA ? s.a[ra - 1] : s.a[ra - 2];
  const K = s.transposeA ? s.a[ra - 2] : s.a[ra - 1];
  const N = s.transposeB ? s.b[rb - 2] : s.b[rb - 1];
  const batchA = s.a.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = s.b.slice(0, -2).reduce((x, y) => x * y, 1);
  return 2 * M * N * K * Math.max(batchA, batchB);
}

/**
 * Time `tf.matMul` of one shape on the thread's current backend: one warm-up call, then calls
 * until `minMs` has passed (at least `minCalls`). Each call waits for its result (`await data()`
 * also works on webgpu), so asynchronous backends are timed honestly.
 */
export async function timeMatMul(
  s: MatMulShape,
  { minMs = 300, minCalls = 3 }: { minMs?: number; minCalls?: number } = {},
): Promise<MatMulTiming> {
  const a = tf.randomNormal([...s.a]);
  const b = tf.randomNormal([...s.b]);
  const once = async () => {
    const y = tf.matMul(a, b, s.transposeA ?? false, s.transposeB ?? false);
    await y.data();
    y.dispose();
  };
  try {
    await once();
    let calls = 0;
    const t0 = performance.now();
    while (calls < minCalls || performance.now() - t0 < minMs) {
      await once();
      calls++;
    }
    const ms = (performance.now() - t0) / calls;
    return { gflops: matMulFlops(s) / (ms * 1e6), msPerCall: ms, calls };
  } finally {
    tf.dispose([a, b]);
  }
}
