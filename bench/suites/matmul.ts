import { setCpuBatchMatMul, setWasmBatchMatMul } from '../../src/kernels/custom/index.js';
import { type MatMulShape, timeMatMul } from '../../src/kernels/measure.js';
import { type NativeAddon, nativeKernels } from '../../src/kernels/native.js';
import { probeBackends, startRuntime } from '../../src/kernels/runtime.js';
import { bf16VsTorch } from './bf16.js';
import type { Suite } from './types.js';

/**
 * The matrix products of one GPT-2-small-shaped layer (d 768, 12 heads of 64, 512 tokens as
 * batch 4 × seq 128), forward and the transposed forms of its gradients.
 */
export const SHAPES: ReadonlyArray<{ name: string; shape: MatMulShape }> = [
  { name: 'linear X·W', shape: { a: [512, 768], b: [768, 768] } },
  { name: 'linear grad dX = dY·Wᵀ', shape: { a: [512, 768], b: [768, 768], transposeB: true } },
  { name: 'linear grad dW = Xᵀ·dY', shape: { a: [512, 768], b: [512, 768], transposeA: true } },
  { name: 'batched linear [4,128,768]·W', shape: { a: [4, 128, 768], b: [768, 768] } },
  {
    name: 'attention Q·Kᵀ (and dP = dO·Vᵀ)',
    shape: { a: [48, 128, 64], b: [48, 128, 64], transposeB: true },
  },
  { name: 'attention P·V (and dQ = dS·K)', shape: { a: [48, 128, 128], b: [48, 128, 64] } },
  {
    name: 'attention grad dV = Pᵀ·dO (and dK)',
    shape: { a: [48, 128, 128], b: [48, 128, 64], transposeA: true },
  },
];

const QUICK = new Set(['linear X·W', 'linear grad dX = dY·Wᵀ', 'attention Q·Kᵀ (and dP = dO·Vᵀ)']);

export type Row = {
  backend: string;
  kernel: string;
  shape: string;
  gflops: number;
  msPerCall: number;
};

export function describe(s: MatMulShape): string {
  return `[${s.a}]${s.transposeA ? 'ᵀ' : ''}·[${s.b}]${s.transposeB ? 'ᵀ' : ''}`;
}

export const matmulSuite: Suite = {
  name: 'matmul',
  description:
    'fp32 matMul GFLOP/s per backend and shape; on wasm, the native BLAS (when built) and the fast BatchMatMul vs stock',
  async run({ quick, log }) {
    const rows: Row[] = [];
    const shapes = SHAPES.filter((s) => !quick || QUICK.has(s.name));
    const available = (await probeBackends()).filter((p) => p.available).map((p) => p.backend);
    for (const backend of available) {
      await startRuntime({ backend });
      // Warm up: the first touch of fresh memory is slow on these VMs, and XNNPACK sets up lazily.
      await timeMatMul(shapes[0].shape, { minMs: quick ? 200 : 1000 });
      const native = nativeKernels().available;
      const variants: readonly ('native' | 'fast' | 'stock')[] =
        backend === 'wasm'
          ? native
            ? ['native', 'fast', 'stock']
            : ['fast', 'stock']
          : backend === 'cpu' && native
            ? ['native', 'stock']
            : ['stock'];
      for (const { name, shape } of shapes) {
        // Variants interleaved over rounds, best round kept: drift on a shared machine, and the
        // slow first touch of memory the heap has just grown into, hit every variant alike.
        const best = new Map<string, { gflops: number; msPerCall: number }>();
        for (let round = 0; round < (quick || backend === 'cpu' ? 1 : 3); round++) {
          for (const variant of variants) {
            if (backend === 'wasm') setWasmBatchMatMul(variant);
            if (backend === 'cpu') setCpuBatchMatMul(variant === 'native' ? 'native' : 'stock');
            const t = await timeMatMul(shape, {
              minMs: quick ? 100 : 300,
              minCalls: backend === 'cpu' ? 1 : 3,
            });
            if (process.env['BENCH_VERBOSE'])
              log(`  round ${round} ${variant} ${t.gflops.toFixed(1)}`);
            if (t.gflops > (best.get(variant)?.gflops ?? 0)) best.set(variant, t);
          }
        }
        for (const [variant, t] of best) {
          const kernel =
            backend === 'wasm' || (backend === 'cpu' && variants.length > 1)
              ? `${backend} ${variant}`
              : backend;
          rows.push({
            backend,
            kernel,
            shape: `${name} ${describe(shape)}`,
            gflops: t.gflops,
            msPerCall: t.msPerCall,
          });
          log(`${kernel.padEnd(12)} ${t.gflops.toFixed(2).padStart(8)} GFLOP/s  ${name}`);
        }
      }
      if (backend === 'wasm') setWasmBatchMatMul(native ? 'native' : 'fast');
      if (backend === 'cpu' && native) setCpuBatchMatMul('native');
    }
    // The BLAS itself, called straight on JS arrays: what the native kernel costs on top of it.
    const n = nativeKernels();
    if (n.available) {
      for (const { name, shape } of shapes) {
        const t = timeBlas(n.addon, shape, quick ? 100 : 300);
        rows.push({
          backend: 'blas',
          kernel: 'OpenBLAS direct',
          shape: `${name} ${describe(shape)}`,
          gflops: t.gflops,
          msPerCall: t.msPerCall,
        });
        log(`${'blas'.padEnd(12)} ${t.gflops.toFixed(2).padStart(8)} GFLOP/s  ${name}`);
      }
      const t = timeBlas(n.addon, SQUARE, quick ? 100 : 300);
      rows.push({
        backend: 'blas',
        kernel: 'OpenBLAS direct',
        shape: `square 2048³ ${describe(SQUARE)}`,
        gflops: t.gflops,
        msPerCall: t.msPerCall,
      });
      const bf16 = bf16VsTorch(n.addon, quick, log);
      return { rows: [...rows, ...bf16.rows], markdown: `${table(rows)}\n\n${bf16.markdown}` };
    }
    return { rows, markdown: table(rows) };
  },
};

export const SQUARE: MatMulShape = { a: [2048, 2048], b: [2048, 2048] };

/** bf16Gemm on plain Float32Arrays (2-D shapes), best of 3 rounds. */
export function timeBf16(
  addon: NativeAddon,
  s: MatMulShape,
  minMs: number,
): { gflops: number; msPerCall: number } {
  const ta = s.transposeA ?? false;
  const tb = s.transposeB ?? false;
  const M = ta ? s.a[1] : s.a[0];
  const K = ta ? s.a[0] : s.a[1];
  const N = tb ? s.b[0] : s.b[1];
  const a = new Float32Array(M * K).map((_, i) => Math.sin(i));
  const b = new Float32Array(K * N).map((_, i) => Math.cos(i));
  const c = new Float32Array(M * N);
  const call = () => addon.bf16Gemm(ta, tb, M, N, K, a, b, c);
  return bestOf(call, minMs, 2 * M * N * K);
}

/** Best per-call time of `call` over 3 rounds of at least `minMs` (and 3 calls) each. */
function bestOf(
  call: () => void,
  minMs: number,
  flop: number,
): { gflops: number; msPerCall: number } {
  call();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < minMs || n < 3) {
      call();
      n++;
    }
    best = Math.min(best, (performance.now() - t0) / n);
  }
  return { gflops: flop / (best * 1e6), msPerCall: best };
}

/** sgemmBatched on plain Float32Arrays, best of 3 rounds. */
function timeBlas(
  addon: NativeAddon,
  s: MatMulShape,
  minMs: number,
): { gflops: number; msPerCall: number } {
  const ta = s.transposeA ?? false;
  const tb = s.transposeB ?? false;
  const [ra, rb] = [s.a.length, s.b.length];
  const M = ta ? s.a[ra - 1] : s.a[ra - 2];
  const K = ta ? s.a[ra - 2] : s.a[ra - 1];
  const N = tb ? s.b[rb - 2] : s.b[rb - 1];
  const batchA = s.a.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = s.b.slice(0, -2).reduce((x, y) => x * y, 1);
  const batch = Math.max(batchA, batchB);
  const a = new Float32Array(batchA * M * K).map((_, i) => Math.sin(i));
  const b = new Float32Array(batchB * K * N).map((_, i) => Math.cos(i));
  const c = new Float32Array(batch * M * N);
  const call = () =>
    addon.sgemmBatched(
      ta,
      tb,
      batch,
      M,
      N,
      K,
      a,
      batchA === 1 ? 0 : M * K,
      b,
      batchB === 1 ? 0 : K * N,
      c,
    );
  return bestOf(call, minMs, 2 * batch * M * N * K);
}

function table(rows: Row[]): string {
  const kernels = [...new Set(rows.map((r) => r.kernel))];
  const shapes = [...new Set(rows.map((r) => r.shape))];
  const cell = (k: string, s: string) => {
    const r = rows.find((x) => x.kernel === k && x.shape === s);
    return r ? r.gflops.toFixed(1) : '—';
  };
  const speedup = (s: string) => {
    const f = rows.find((x) => x.kernel === 'wasm fast' && x.shape === s);
    const st = rows.find((x) => x.kernel === 'wasm stock' && x.shape === s);
    return f && st ? `${(f.gflops / st.gflops).toFixed(1)}×` : '—';
  };
  const hasWasm = kernels.includes('wasm fast');
  return [
    `| shape (GFLOP/s) | ${kernels.join(' | ')}${hasWasm ? ' | fast / stock' : ''} |`,
    `|---|${kernels.map(() => '---:').join('|')}${hasWasm ? '|---:' : ''}|`,
    ...shapes.map(
      (s) =>
        `| ${s} | ${kernels.map((k) => cell(k, s)).join(' | ')}${hasWasm ? ` | ${speedup(s)}` : ''} |`,
    ),
  ].join('\n');
}
