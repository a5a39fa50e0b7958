/**
 * A/B timing of the GRPO bench job's policy update (forward + backward, the shared-prefix loss of
 * bench/profile-step.ts grpo share) with this session's small-kernel changes on and off, in one
 * process, the two interleaved run by run so that a shared machine's load falls on both alike:
 *
 *   OPENBLAS_CORETYPE=SkylakeX TROUPE_BLAS_THREADS=1 npx tsx scripts/grpo-update-ab.ts [prompts = 4] [runs = 15] [change = kv]
 *
 *   kv         on: TroupeKvExpand (+ Grad) and the native UnsortedSegmentSum (native/rows.c)
 *              off: the kernels they replace: tfjs' GatherV2, Transpose and Concat (SplitV,
 *              UnsortedSegmentSum, Transpose backward), and the JavaScript segment-sum loop
 *   attention  on: TroupeAttnScores / TroupeAttnValues (the heads in place); off: the head
 *              split and merge Transposes around the BatchMatMuls
 *   all        both
 *
 * Prints the median and best wall and process CPU ms of each, the loss of each and a hash of
 * each one's gradients (equal where the change keeps the bits).
 */

import { grpoModelConfig, GRPO_JOB as j } from '../bench/suites/rl-grpo.js';
import { sharedPrefixRows, tokenStream } from '../bench/tokens.js';
import { rightPad } from '../src/data/batching/collate.js';
import { ATTN_SCORES, ATTN_VALUES } from '../src/kernels/custom/native-attention.js';
import { KV_EXPAND, KV_EXPAND_GRAD } from '../src/kernels/custom/native-kv.js';
import { segmentSumInto } from '../src/kernels/custom/row-loops.js';
import { f32View, i32View, sizeOf, type WasmBackendLike } from '../src/kernels/custom/wasm-heap.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { CausalLM } from '../src/policy/index.js';
import { targetLogProbs } from '../src/policy/target-logprobs.js';

const prompts = Number(process.argv[2] ?? 4);
const runs = Number(process.argv[3] ?? 15);
const change = process.argv[4] ?? 'kv';
if (change !== 'kv' && change !== 'attention' && change !== 'all') {
  process.stderr.write(`change must be kv, attention or all, got ${change}\n`);
  process.exit(2);
}
await startRuntime({ backend: 'wasm' });
const config = grpoModelConfig();
const B = prompts * j.samples;
const T = 64;
const batch = rightPad(sharedPrefixRows(tokenStream(config.vocabSize), B, T, j.samples), 0);
const model = CausalLM.init(config, { seed: 1 });
const vars = [...model.params.values()];

const kv = change === 'kv' || change === 'all';
const names = [
  ...(kv ? [KV_EXPAND, KV_EXPAND_GRAD, 'UnsortedSegmentSum'] : []),
  ...(change !== 'kv' ? [ATTN_SCORES, ATTN_VALUES] : []),
];
const mine = names.map((k) => {
  const kernel = tf.getKernel(k, 'wasm');
  if (!kernel) throw new Error(`${k} is not registered on wasm (is the addon built?)`);
  return kernel;
});
/** the wasm UnsortedSegmentSum before: the JavaScript loop over heap views */
const jsSegmentSum: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: (({ inputs, backend, attrs }) => {
    const w = backend as unknown as WasmBackendLike;
    const { x, segmentIds } = inputs as Record<string, tf.TensorInfo>;
    const { numSegments } = attrs as unknown as { numSegments: number };
    const inner = sizeOf(x.shape.slice(segmentIds.shape.length));
    const out = w.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
    const o = f32View(w, out);
    o.fill(0);
    segmentSumInto(o, f32View(w, x), i32View(w, segmentIds), inner, numSegments);
    return out;
  }) as tf.KernelFunc,
};
const use = (on: boolean) => {
  for (const k of mine)
    if (tf.getKernel(k.kernelName, 'wasm')) tf.unregisterKernel(k.kernelName, 'wasm');
  if (on) for (const k of mine) tf.registerKernel(k);
  else if (kv) tf.registerKernel(jsSegmentSum);
};

/** FNV-1a over the gradients' float32 bits, in the variables' order (read after the timing) */
const gradHash = (grads: Record<string, tf.Tensor>): string => {
  let h = 0x811c9dc5;
  for (const v of vars) {
    const g = grads[v.name];
    if (!g) continue;
    for (const u of new Uint32Array((g.dataSync() as Float32Array).slice().buffer)) {
      h = Math.imul(h ^ u, 0x01000193) >>> 0;
    }
  }
  return h.toString(16).padStart(8, '0');
};
let hashes: Record<'on' | 'off', string> = { on: '', off: '' };
const pass = async (hashAs?: 'on' | 'off'): Promise<[number, number, number]> => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { value, grads } = tf.variableGrads(() => {
    const { logp } = targetLogProbs(model, batch, {
      start: T / 2,
      entropy: 'metric',
      sharePrefix: true,
    });
    return tf.neg(tf.mean(logp)) as tf.Scalar;
  }, vars);
  const loss = (await value.data())[0];
  const cpu = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  if (hashAs) hashes = { ...hashes, [hashAs]: gradHash(grads) };
  tf.dispose([value, ...Object.values(grads)]);
  return [wall, (cpu.user + cpu.system) / 1000, loss];
};
const times: Record<'on' | 'off', [number, number][]> = { on: [], off: [] };
const losses: Record<'on' | 'off', number> = { on: 0, off: 0 };
try {
  for (const on of [true, false]) {
    use(on);
    await pass(on ? 'on' : 'off');
    await pass(); // warm
  }
  for (let r = 0; r < runs; r++) {
    for (const on of r % 2 === 0 ? [true, false] : [false, true]) {
      use(on);
      const [wall, cpu, loss] = await pass();
      times[on ? 'on' : 'off'].push([wall, cpu]);
      losses[on ? 'on' : 'off'] = loss;
    }
  }
} finally {
  use(true);
  model.dispose();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
process.stdout.write(
  `GRPO update fwd + bwd (${change} off/on), ${B} x ${T} tokens (shared prompts), ${process.env.TROUPE_BLAS_THREADS ?? 'default'} BLAS threads, ${runs} runs each, interleaved\n`,
);
for (const k of ['off', 'on'] as const) {
  const w = times[k].map(([x]) => x);
  const c = times[k].map(([, x]) => x);
  process.stdout.write(
    `${k.padEnd(4)} wall median ${median(w).toFixed(1)} best ${Math.min(...w).toFixed(1)} ms, CPU median ${median(c).toFixed(1)} best ${Math.min(...c).toFixed(1)} ms, loss ${losses[k]}, gradients ${hashes[k]}\n`,
  );
}
