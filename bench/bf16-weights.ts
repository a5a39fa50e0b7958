/**
 * The few-row bf16-weight product (native/bf16.c bf16LinearW below 32 rows: x fp32 against
 * bf16 weights in panels), in GB/s of weights read (#17 item 4):
 *
 *   OPENBLAS_CORETYPE=SkylakeX tbench npx tsx bench/bf16-weights.ts [ms per case] [shape filter]
 *
 * Rows 1 and 8 × GPT-2's decoding shapes (q, k, v, o 768×768, qkv fused 768×2304, fc 768×3072, proj 3072×768, the LM head
 * 768×50257) × 1 and 2 threads. Each case: a warm-up, then calls until `ms` have passed, in 5
 * rounds; the figure is the best round's mean per call (the weights, 2 bytes each over whole
 * 32-column panels, divided by it). The calls cycle through copies of the weights (192 MB in
 * all) so that each comes from memory, as in a decode step: GPT-2's 12 layers and LM head are
 * 250 MB of bf16, past any cache (one 3.5-4.7 MB layer weight, called again and again, would sit in
 * L2 and L3 and read 1.5-2x faster than decoding ever sees).
 */

import { w16Buffer } from '../src/kernels/custom/native-w16-linear.js';
import { nativeKernels } from '../src/kernels/native.js';
import { RandomStream } from '../src/kernels/random.js';

const ms = Number(process.argv[2] ?? 300);
const only = process.argv[3] ?? ''; // e.g. 'proj': the shapes whose name has it
if (!(ms > 0)) {
  process.stderr.write('usage: bf16-weights.ts [ms per case] [shape filter]\n');
  process.exit(2);
}
const native = nativeKernels();
if (!native.available) throw new Error(`bf16-weights: no native addon: ${native.reason}`);
const a = native.addon;
const say = (line: string) => process.stdout.write(`${line}\n`);

const SHAPES: [string, number, number][] = [
  ['q/k/v/o 768×768', 768, 768], // the decoder block's own (decode.c: one call each)
  ['qkv 768×2304', 768, 2304],
  ['fc 768×3072', 768, 3072],
  ['proj 3072×768', 3072, 768],
  ['lm head 768×50257', 768, 50257],
];
const rng = RandomStream.of({ seed: 1, step: 0, actor: 'bench-w16' });
const saved = a.threads();
say(
  `bf16LinearW few-row path, bf16 path ${a.bf16Path()}, OPENBLAS_CORETYPE ${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`,
);
say('| shape | rows | threads | µs/call | GB/s of weights |');
say('|---|---:|---:|---:|---:|');
try {
  for (const [name, K, N] of SHAPES.filter(([s]) => s.includes(only))) {
    const first = w16Buffer(K, N);
    a.toBf16Panels(rng.normal(K * N), K, N, first);
    const bytes = first.length * 2;
    const copies = Array.from({ length: Math.max(1, Math.ceil(192e6 / bytes)) }, (_, i) =>
      i === 0 ? first : first.slice(),
    );
    let next = 0;
    const bits = () => copies[next++ % copies.length];
    for (const R of [1, 8]) {
      const x = rng.normal(R * K);
      const y = new Float32Array(R * N);
      const none = new Float32Array(0);
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        for (let i = 0; i < 3; i++) a.bf16LinearW(x, bits(), none, R, K, N, y);
        let best = Number.POSITIVE_INFINITY;
        for (let round = 0; round < 5; round++) {
          let calls = 0;
          const t0 = performance.now();
          let t = t0;
          while (t - t0 < ms / 5) {
            a.bf16LinearW(x, bits(), none, R, K, N, y);
            calls++;
            t = performance.now();
          }
          best = Math.min(best, (t - t0) / calls);
        }
        const gbs = bytes / (best * 1e-3) / 1e9;
        say(`| ${name} | ${R} | ${threads} | ${(best * 1e3).toFixed(1)} | ${gbs.toFixed(1)} |`);
      }
    }
  }
} finally {
  a.setThreads(saved);
}
