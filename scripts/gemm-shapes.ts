/**
 * GFLOP/s of the native sgemm (OpenBLAS through the addon) at given shapes, warm, per thread
 * count:  npx tsx scripts/gemm-shapes.ts M,N,K[,tA,tB] ...   (default: the GRPO bench job's)
 */
import { nativeKernels, useThreadBlasThreads } from '../src/kernels/native.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

const st = nativeKernels();
if (!st.available) throw new Error(`no native addon: ${st.reason}`);
const addon = st.addon;
const args = process.argv.slice(2);
const shapes = (
  args.length > 0
    ? args
    : [
        '128,128,2048,1,0',
        '2048,128,128,0,1',
        '2048,128,128',
        '2048,512,128',
        '64,128,128',
        '64,512,128',
        '64,128,512',
      ]
).map((s) => s.split(',').map(Number));
for (const threads of [1, 2]) {
  useThreadBlasThreads(threads);
  for (const [M, N, K, ta = 0, tb = 0] of shapes) {
    const a = new Float32Array(M * K).map(() => Math.random());
    const b = new Float32Array(K * N).map(() => Math.random());
    const c = new Float32Array(M * N);
    const run = () => addon.sgemmBatched(ta === 1, tb === 1, 1, M, N, K, a, 0, b, 0, c);
    for (let i = 0; i < 20; i++) run();
    const n = Math.max(20, Math.round(2e9 / (2 * M * N * K)));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) run();
    const ms = (performance.now() - t0) / n;
    const gf = (2 * M * N * K) / ms / 1e6;
    say(
      `${threads}t M${M} N${N} K${K}${ta ? ' Aᵀ' : ''}${tb ? ' Bᵀ' : ''}: ${(ms * 1000).toFixed(0)} µs ${gf.toFixed(0)} GFLOP/s`,
    );
  }
}
