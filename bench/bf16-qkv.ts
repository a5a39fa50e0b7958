/**
 * q, k and v of the small model's bf16 step as three bf16Linear calls against one bf16Linear3
 * (x packed once), and their gradients as three bf16LinearBackward against one
 * bf16Linear3Backward (xᵀ packed once for the three dW), #17:
 *
 *   OPENBLAS_CORETYPE=SkylakeX TROUPE_BLAS_THREADS=2 tbench npx tsx bench/bf16-qkv.ts [ms] [copies]
 *
 * x [1024, 384] (8 × 128 tokens), W_q, W_k, W_v [384, 384] with biases, as the step makes the
 * call (dy the gradients of y, dx, dW, db as the backward pass makes them). `copies` sets of operands are cycled (1: hot in cache; 16, the default: each call reads
 * them from L3 or memory, as the step does). µs per call: the best of 5 rounds' means.
 */
import { nativeKernels } from '../src/kernels/native.js';

const ms = Number(process.argv[2] ?? 300);
const copies = Number(process.argv[3] ?? 16);
const native = nativeKernels();
if (!native.available) throw new Error(`bf16-qkv: no native addon: ${native.reason}`);
const a = native.addon;
const linear3 = a.bf16Linear3;
const backward = a.bf16LinearBackward;
const backward3 = a.bf16Linear3Backward;
if (!linear3 || !backward || !backward3)
  throw new Error('bf16-qkv: the addon has no bf16Linear3 (rebuild: npm run build:native)');
const [R, I, O] = [1024, 384, 384];
const rand = (n: number, s: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s));
const sets = Array.from({ length: copies }, (_, c) => ({
  x: rand(R * I, c),
  w: [0, 1, 2].map((i) => rand(I * O, 10 * c + i)),
  b: [0, 1, 2].map((i) => rand(O, 20 * c + i)),
  y: [0, 1, 2].map(() => new Float32Array(R * O)),
  dy: [0, 1, 2].map((i) => rand(R * O, 30 * c + i)),
  dx: [0, 1, 2].map(() => new Float32Array(R * I)),
  dw: [0, 1, 2].map(() => new Float32Array(I * O)),
  db: [0, 1, 2].map(() => new Float32Array(O)),
}));

function best(call: (s: (typeof sets)[number]) => void): number {
  let b = Number.POSITIVE_INFINITY;
  let k = 0;
  for (let r = 0; r < 5; r++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms || n < 3) {
      call(sets[k++ % copies]);
      n++;
    }
    b = Math.min(b, ((performance.now() - t0) / n) * 1000);
  }
  return b;
}

const three = (s: (typeof sets)[number]) => {
  for (let i = 0; i < 3; i++) a.bf16Linear(s.x, s.w[i], s.b[i], R, I, O, s.y[i]);
};
const one = (s: (typeof sets)[number]) =>
  linear3.call(
    a,
    s.x,
    R,
    I,
    s.w[0],
    s.b[0],
    s.y[0],
    s.w[1],
    s.b[1],
    s.y[1],
    s.w[2],
    s.b[2],
    s.y[2],
  );
const threeBack = (s: (typeof sets)[number]) => {
  for (let i = 0; i < 3; i++)
    backward.call(a, s.dy[i], s.x, s.w[i], R, I, O, s.dx[i], s.dw[i], s.db[i]);
};
const oneBack = (s: (typeof sets)[number]) =>
  backward3.call(a, s.x, R, I, s.dy, s.w, s.dx, s.dw, s.db);
const head = `${a.bf16Path()}, ${a.threads()} threads, ${copies} operand sets`;
for (let round = 0; round < 2; round++) {
  const [t3, t1, b3, b1] = [best(three), best(one), best(threeBack), best(oneBack)];
  process.stdout.write(
    `${head}: forward three bf16Linear ${t3.toFixed(0)} µs, bf16Linear3 ${t1.toFixed(0)} µs (${(t3 / t1).toFixed(2)}×); backward three bf16LinearBackward ${b3.toFixed(0)} µs, bf16Linear3Backward ${b1.toFixed(0)} µs (${(b3 / b1).toFixed(2)}×)\n`,
  );
}
