/**
 * Wall time of the native decoder block (native/decode.c decodeBlock) alone, at the GRPO bench
 * job's shapes (tiny GPT-2: d 128, 4 heads of 32, MLP 512; prompt 32 then 32 decode steps, cache
 * capacity 64), one decode step per call over a past of P = 32 … 63 tokens, 4 layers' caches
 * (so the caches are as far from the core as in a generation), warm, on this thread's BLAS threads:
 *
 *   TROUPE_BLAS_THREADS=1 npx tsx scripts/decode-block-bench.ts [batch=64] [reps=20]
 *
 * Prints µs a call (median over reps of the mean over the 32 steps × 4 layers; wall, then process
 * CPU time) and a hash of the
 * bits of every output and of the caches (the same before and after a change that claims to keep
 * them). LAYERS=n: n layers. caches instead of 4; PREFILL=n: the prefill of n prompts (8).
 */
import { nativeKernels } from '../src/kernels/native.js';

const st = nativeKernels();
if (!st.available) throw new Error(`no native addon: ${st.reason}`);
const addon = st.addon;
const B = Number(process.argv[2] ?? 64);
const reps = Number(process.argv[3] ?? 20);
const hd = Number(process.env.HD ?? 32);
const d = 128,
  H = d / hd,
  I = 512,
  cap = 64,
  prompt = 32,
  steps = 32;
const layers = Number(process.env.LAYERS ?? 4);

let seed = 12345;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
const fill = (n: number, s: number) => Float32Array.from({ length: n }, () => rand() * s);
const EMPTY = new Float32Array(0);
const params = (): Float32Array[] => [
  fill(d, 0.2).map((v) => 1 + v), // attn_norm.weight
  fill(d, 0.1),
  fill(d * d, 0.2), // q
  fill(d, 0.05),
  fill(d * d, 0.2), // k
  fill(d, 0.05),
  fill(d * d, 0.2), // v
  fill(d, 0.05),
  fill(d * d, 0.2), // o
  fill(d, 0.05),
  fill(d, 0.2).map((v) => 1 + v), // mlp_norm.weight
  fill(d, 0.1),
  EMPTY,
  EMPTY,
  fill(d * I, 0.2), // up
  fill(I, 0.05),
  fill(I * d, 0.1), // down
  fill(d, 0.05),
  EMPTY,
  EMPTY,
  EMPTY,
  EMPTY,
];
const ps = Array.from({ length: layers }, params);
const caches = Array.from({ length: layers }, () => ({
  k: fill(B * H * cap * hd, 1),
  v: fill(B * H * cap * hd, 1),
}));
const x = fill(B * d, 1);
const y = new Float32Array(B * d);
// bias: a few left-padded positions per row masked, as a padded prompt's
const biases = Array.from({ length: steps }, (_, t) => {
  const S = prompt + t + 1;
  const b = new Float32Array(B * S);
  for (let r = 0; r < B; r++) for (let j = 0; j < r % 5; j++) b[r * S + j] = -1e9;
  return b;
});
const floats = Float64Array.of(1e-5, 1 / Math.sqrt(hd), 0);
const dims = (P: number) => Int32Array.of(B, 1, d, H, H, hd, I, P, cap, 0, 0, hd, 0, 0);

// FNV-1a over the bits of every output, and of the caches at the end
let hash = 0x811c9dc5;
const mix = (a: Float32Array) => {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) hash = Math.imul(hash ^ u[i], 16777619) >>> 0;
};
const run = (check: boolean) => {
  for (let t = 0; t < steps; t++) {
    const P = prompt + t;
    for (let l = 0; l < layers; l++) {
      addon.decodeBlock(
        dims(P),
        floats,
        x,
        ps[l],
        EMPTY,
        EMPTY,
        biases[t],
        caches[l].k,
        caches[l].v,
        y,
      );
      if (check) mix(y);
    }
  }
};
run(true);
for (const c of caches) {
  mix(c.k);
  mix(c.v);
}
const checksum = hash.toString(16);
// wall and this process's CPU time (under a shared machine's load the CPU time moves less)
const times: number[] = [];
const cpus: number[] = [];
for (let r = 0; r < reps; r++) {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  run(false);
  const c = process.cpuUsage(c0);
  times.push(((performance.now() - t0) * 1000) / (steps * layers));
  cpus.push((c.user + c.system) / (steps * layers));
}
times.sort((a, b) => a - b);
cpus.sort((a, b) => a - b);
process.stdout.write(
  `decodeBlock b${B} (d ${d}, ${H}×${hd}, I ${I}, P ${prompt}..${prompt + steps - 1}), BLAS threads ${addon.threads()}: ` +
    `${times[times.length >> 1].toFixed(0)} µs/call (min ${times[0].toFixed(0)}, max ${times.at(-1)!.toFixed(0)}), CPU ${cpus[cpus.length >> 1].toFixed(0)} µs/call; checksum ${checksum}\n`,
);

// The prefill the generation runs first: PREFILL (8) distinct prompts of 32 tokens, P 0 (one call
// a layer; profile-generate.ts's prompts are all distinct: 64 at batch 64).
{
  const Bp = Number(process.env.PREFILL ?? 8);
  const T = prompt;
  const xp = fill(Bp * T * d, 1);
  const yp = new Float32Array(Bp * T * d);
  const bp = new Float32Array(Bp * T * T);
  for (let r = 0; r < Bp; r++)
    for (let t = 0; t < T; t++) for (let j = t + 1; j < T; j++) bp[(r * T + t) * T + j] = -1e9;
  const kc = Array.from({ length: layers }, () => new Float32Array(Bp * H * cap * hd));
  const vc = Array.from({ length: layers }, () => new Float32Array(Bp * H * cap * hd));
  const dp = Int32Array.of(Bp, T, d, H, H, hd, I, 0, cap, 0, 0, hd, 0, 0);
  const go = () => {
    for (let l = 0; l < layers; l++)
      addon.decodeBlock(dp, floats, xp, ps[l], EMPTY, EMPTY, bp, kc[l], vc[l], yp);
  };
  go();
  const pt: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    go();
    pt.push(((performance.now() - t0) * 1000) / layers);
  }
  pt.sort((a, b) => a - b);
  hash = 0x811c9dc5;
  mix(yp);
  process.stdout.write(
    `prefill b${Bp}×${T}: ${pt[pt.length >> 1].toFixed(0)} µs/call (min ${pt[0].toFixed(0)}); hash ${hash.toString(16)}\n`,
  );
}
