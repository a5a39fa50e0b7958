/**
 * The small model's bf16 training-step products, one native call at a time (#17):
 *
 *   OPENBLAS_CORETYPE=SkylakeX TROUPE_BLAS_THREADS=2 tbench npx tsx bench/bf16-step-shapes.ts [ms]
 *
 * Each row is one call as the step makes it (bench/profile-step.ts small bf16: d 384, L 6,
 * 8 × 128 tokens): the projections' forward (bf16Linear with its bias), their dX and dW
 * (bf16Gemm), attention's batched products (bf16GemmBatched over 48 heads) and the fp32 sgemm of
 * the same shape beside it. µs per call is the best round's mean (3 rounds of `ms` each), with
 * the GFLOP/s that makes; no tfjs in between, so the gap to the profile's per-call time is the
 * engine's share.
 */
import { nativeKernels } from '../src/kernels/native.js';

const ms = Number(process.argv[2] ?? 200);
const native = nativeKernels();
if (!native.available) throw new Error(`bf16-step-shapes: no native addon: ${native.reason}`);
const a = native.addon;
const say = (line: string) => process.stdout.write(`${line}\n`);
const fill = (n: number, f: (i: number) => number) =>
  Float32Array.from({ length: n }, (_, i) => f(i));

function best(call: () => void): number {
  call();
  let b = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 3; r++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms || n < 3) {
      call();
      n++;
    }
    b = Math.min(b, (performance.now() - t0) / n);
  }
  return b * 1000;
}

type Case = { name: string; flop: number; bf16: () => void; fp32?: () => void };
const cases: Case[] = [];
const R = 1024;
for (const [I, O] of [
  [384, 384],
  [384, 1536],
  [1536, 384],
] as const) {
  const x = fill(R * I, (i) => Math.sin(i));
  const w = fill(I * O, (i) => Math.cos(i) * 0.05);
  const bias = fill(O, (i) => i * 1e-3);
  const y = new Float32Array(R * O);
  const dy = fill(R * O, (i) => Math.sin(0.7 * i));
  const dx = new Float32Array(R * I);
  const dw = new Float32Array(I * O);
  cases.push({
    name: `linear fwd ${R}×${I}·${I}×${O} +b`,
    flop: 2 * R * I * O,
    bf16: () => a.bf16Linear(x, w, bias, R, I, O, y),
    fp32: () => a.linearForward(x, w, bias, R, I, O, y),
  });
  cases.push({
    name: `linear dX ${R}×${O}·(${I}×${O})ᵀ`,
    flop: 2 * R * I * O,
    bf16: () => a.bf16Gemm(false, true, R, I, O, dy, w, dx),
    fp32: () => a.sgemmBatched(false, true, 1, R, I, O, dy, 0, w, 0, dx),
  });
  cases.push({
    name: `linear dW (${R}×${I})ᵀ·${R}×${O}`,
    flop: 2 * R * I * O,
    bf16: () => a.bf16Gemm(true, false, I, O, R, x, dy, dw),
    fp32: () => a.sgemmBatched(true, false, 1, I, O, R, x, 0, dy, 0, dw),
  });
}
{
  const B = 48;
  const T = 128;
  const hd = 64;
  const q = fill(B * T * hd, (i) => Math.sin(i));
  const k = fill(B * T * hd, (i) => Math.cos(i));
  const p = fill(B * T * T, (i) => Math.abs(Math.sin(i)) / T);
  const s = new Float32Array(B * T * T);
  const o = new Float32Array(B * T * hd);
  const batched = (
    ta: boolean,
    tb: boolean,
    M: number,
    N: number,
    K: number,
    x: Float32Array,
    y: Float32Array,
    z: Float32Array,
  ) => ({
    bf16: () => a.bf16GemmBatched(ta, tb, B, M, N, K, x, M * K, y, K * N, z),
    fp32: () => a.sgemmBatched(ta, tb, B, M, N, K, x, M * K, y, K * N, z),
  });
  cases.push({
    name: 'attn q·kᵀ 48×[128×64·(128×64)ᵀ]',
    flop: 2 * B * T * T * hd,
    ...batched(false, true, T, T, hd, q, k, s),
  });
  cases.push({
    name: 'attn p·v 48×[128×128·128×64]',
    flop: 2 * B * T * T * hd,
    ...batched(false, false, T, hd, T, p, k, o),
  });
  cases.push({
    name: 'attn dk pᵀ·dO 48×[(128×128)ᵀ·128×64]',
    flop: 2 * B * T * T * hd,
    ...batched(true, false, T, hd, T, p, q, o),
  });
}
say(
  `bf16 path ${a.bf16Path()}, ${a.threads()} thread(s), OPENBLAS_CORETYPE ${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`,
);
say('| call | bf16 µs | bf16 GFLOP/s | fp32 µs | fp32 GFLOP/s |');
say('|---|---:|---:|---:|---:|');
for (const c of cases) {
  const tb = best(c.bf16);
  const tf = c.fp32 ? best(c.fp32) : Number.NaN;
  const g = (us: number) => (c.flop / us / 1e3).toFixed(0);
  say(`| ${c.name} | ${tb.toFixed(0)} | ${g(tb)} | ${tf.toFixed(0)} | ${g(tf)} |`);
}

// The same forward products through tfjs (wasm backend, precision bf16): TroupeLinear as the model
// calls it, the output allocated in the wasm heap and disposed after each call.
{
  const { startRuntime } = await import('../src/kernels/runtime.js');
  const tf = await import('../src/kernels/tf.js');
  const { nativeLinear } = await import('../src/kernels/custom/native-linear.js');
  await startRuntime({ backend: 'wasm', precision: 'bf16' });
  say('\nthrough tfjs (wasm, precision bf16):');
  say('| call | µs | GFLOP/s |');
  say('|---|---:|---:|');
  for (const [I, O] of [
    [384, 384],
    [384, 1536],
    [1536, 384],
  ] as const) {
    const x = tf.tensor(
      fill(R * I, (i) => Math.sin(i)),
      [8, 128, I],
    );
    const w = tf.tensor(
      fill(I * O, (i) => Math.cos(i) * 0.05),
      [I, O],
    );
    const b = tf.tensor(
      fill(O, (i) => i * 1e-3),
      [O],
    );
    for (const [label, bias] of [
      ['+b', b],
      ['no bias', undefined],
    ] as const) {
      const us = best(() => tf.dispose(nativeLinear(x, w, bias)));
      say(
        `| TroupeLinear ${R}×${I}·${I}×${O} ${label} | ${us.toFixed(0)} | ${((2 * R * I * O) / us / 1e3).toFixed(0)} |`,
      );
      const us2 = best(() => tf.dispose(tf.matMul(tf.reshape(x, [R, I]), w)));
      say(
        `| BatchMatMul ${R}×${I}·${I}×${O} | ${us2.toFixed(0)} | ${((2 * R * I * O) / us2 / 1e3).toFixed(0)} |`,
      );
    }
    tf.dispose([x, w, b]);
  }
}

// Cold operands: the forward products cycling through copies of x and W (~96 MB in all), so
// that each call reads them from memory or L3 as a step does (its activations are ~100 MB).
{
  say('\ncold operands (cycling through copies):');
  say('| call | bf16 µs | bf16 GFLOP/s |');
  say('|---|---:|---:|');
  for (const [I, O] of [
    [384, 384],
    [384, 1536],
    [1536, 384],
  ] as const) {
    const n = Math.ceil(96e6 / ((R * I + I * O) * 4));
    const xs = Array.from({ length: n }, (_, c) => fill(R * I, (i) => Math.sin(i + c)));
    const ws = Array.from({ length: n }, (_, c) => fill(I * O, (i) => Math.cos(i + c) * 0.05));
    const ys = Array.from({ length: n }, () => new Float32Array(R * O));
    const bias = fill(O, (i) => i * 1e-3);
    let c = 0;
    const us = best(() => {
      a.bf16Linear(xs[c], ws[c], bias, R, I, O, ys[c]);
      c = (c + 1) % n;
    });
    const us2 = best(() => {
      a.bf16Gemm(false, false, R, O, I, xs[c], ws[c], ys[c]);
      c = (c + 1) % n;
    });
    say(
      `| bf16Linear ${R}×${I}·${I}×${O} +b | ${us.toFixed(0)} | ${((2 * R * I * O) / us / 1e3).toFixed(0)} |`,
    );
    say(
      `| bf16Gemm ${R}×${I}·${I}×${O} | ${us2.toFixed(0)} | ${((2 * R * I * O) / us2 / 1e3).toFixed(0)} |`,
    );
  }
}
