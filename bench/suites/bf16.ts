import { availableParallelism } from 'node:os';
import type { MatMulShape } from '../../src/kernels/measure.js';
import { type NativeAddon, nativeKernels } from '../../src/kernels/native.js';
import { describe, type Row, SHAPES, SQUARE, timeBf16 } from './matmul.js';
import { runCompare, torchAvailable } from './torch-child.js';
import type { Suite } from './types.js';

/*
 * bf16 mixed precision against PyTorch 2.13 in one run: the bf16 kernel's GFLOP/s beside
 * oneDNN's (also in the matmul suite's table).
 */

/** The bf16 kernel's shapes: the GPT-2 layer's linear products and a 2048³ square. */
// (a function: matmul.ts, which this file's SHAPES come from, imports this file too)
const bf16Shapes = (): ReadonlyArray<{ name: string; shape: MatMulShape }> => [
  ...SHAPES.filter((x) => x.name.startsWith('linear')),
  { name: 'square 2048³', shape: SQUARE },
];

/**
 * bf16 products with fp32 sums (native/bf16.c: AMX, AVX512-BF16 or fp32; packing of the fp32
 * operands included) side by side with PyTorch's bf16 matmul on bf16 tensors (oneDNN), at 1 thread
 * and at every core: rounds of PyTorch then Troupe at each thread count, so both sides see the
 * machine in the same state; each figure the median over the rounds of each round's best.
 */
export function bf16VsTorch(
  addon: NativeAddon,
  quick: boolean,
  log: (line: string) => void,
): { rows: Row[]; markdown: string } {
  const path = addon.bf16Path();
  const torch = torchAvailable();
  if (!torch.ok) log(`bf16 vs PyTorch: PyTorch skipped: ${torch.reason}`);
  const counts = [...new Set([1, availableParallelism()])];
  const rounds = quick ? 1 : Math.max(1, Number(process.env.TROUPE_TORCH_ROUNDS ?? 3));
  const mine = new Map<string, number[]>();
  const theirs = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, k: string, v: number) =>
    m.set(k, [...(m.get(k) ?? []), v]);
  let version = '';
  const saved = addon.threads();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const threads of counts) {
        if (torch.ok) {
          const r = runCompare('matmul-bf16', threads, quick, log);
          version = r.torch;
          for (const row of r.rows)
            if (row.unit === 'GFLOP/s')
              add(theirs, `${row.figure.slice(12)}|${threads}`, row.value);
        }
        addon.setThreads(threads);
        for (const { name, shape } of bf16Shapes()) {
          const t = timeBf16(addon, shape, quick ? 100 : 300);
          add(mine, `${name}|${threads}`, t.gflops);
          log(
            `bf16 ${path} ${threads} thread(s) ${t.gflops.toFixed(0).padStart(6)} GFLOP/s  ${name}`,
          );
        }
      }
    }
  } finally {
    addon.setThreads(saved);
  }
  const rows: Row[] = [];
  const med = (xs: number[] | undefined) => {
    if (!xs?.length) return undefined;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const f = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(0));
  const lines = [
    `bf16 products, fp32 sums: Troupe's kernel (${path}; fp32 operands rounded while packed, packing timed) vs PyTorch ${version || '(not run)'} on bf16 tensors (oneDNN); median of ${rounds} round${rounds > 1 ? 's' : ''}, GFLOP/s.`,
    '',
    `| shape | ${counts.map((n) => `Troupe ${n}t | PyTorch ${n}t | Troupe / PyTorch`).join(' | ')} |`,
    `|---|${counts.map(() => '---:|---:|---:').join('|')}|`,
  ];
  for (const { name, shape } of bf16Shapes()) {
    const cells: string[] = [];
    for (const n of counts) {
      const a = med(mine.get(`${name}|${n}`));
      const b = med(theirs.get(`${name}|${n}`));
      const shapeName = `${name} ${describe(shape)}`;
      if (a !== undefined)
        rows.push({
          backend: 'bf16',
          kernel: `bf16 ${path} ${n}t`,
          shape: shapeName,
          gflops: a,
          msPerCall: 0,
        });
      if (b !== undefined)
        rows.push({
          backend: 'torch',
          kernel: `PyTorch bf16 ${n}t`,
          shape: shapeName,
          gflops: b,
          msPerCall: 0,
        });
      cells.push(f(a), f(b), a && b ? `${((100 * a) / b).toFixed(0)} %` : '—');
    }
    lines.push(`| ${name} ${describe(shape)} | ${cells.join(' | ')} |`);
  }
  return { rows, markdown: lines.join('\n') };
}

export const bf16Suite: Suite = {
  name: 'bf16',
  description: "bf16 mixed precision vs PyTorch (bf16 matmul GFLOP/s beside oneDNN's), one run",
  async run({ quick, log }) {
    const n = nativeKernels();
    if (!n.available) {
      log(`skipped: ${n.reason}`);
      return { rows: [], markdown: `Skipped: ${n.reason}.` };
    }
    return bf16VsTorch(n.addon, quick, log);
  },
};
