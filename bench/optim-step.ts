/**
 * The part of a training step after forward + backward, piece by piece (#17):
 *
 *   TROUPE_BLAS_THREADS=1 npx tsx bench/optim-step.ts [small|gpt2] [fp32|bf16] [reps] [wasm|cpu]
 *
 * Builds bench/profile-step.ts's model (small: d 384, L 6, 10.9 M parameters; gpt2: GPT-2-124M
 * with the moments on the host), computes one set of gradients and keeps it, then times, each
 * `reps` times (best and median, ms): the gradient norm as optimizerStep's direct path sums it
 * (sumSquares per gradient over its storage), the AdamW update given those gradients
 * (`opt.step` / `opt.stepOnHost`, the per-tensor tfjs path), and the same arithmetic as bare
 * native calls on host arrays (no tfjs: what the memory and the arithmetic cost alone). Then
 * whole `optimizerStep`s against bare forward + backward passes, alternated.
 */

import { rightPad } from '../src/data/batching/collate.js';
import { hostLoops, hostView, nativeOptim } from '../src/kernels/custom/native-optim.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { AdamW, CausalLM, lmLoss } from '../src/policy/index.js';
import { optimizerStep } from '../src/policy/train-step.js';
import { bf16Cases } from './suites/model.js';
import { tokenStream } from './tokens.js';

const [which = 'small', precision = 'fp32', repsArg = '7', backend = 'wasm'] =
  process.argv.slice(2);
const reps = Number(repsArg);
if (
  !['small', 'gpt2'].includes(which) ||
  !['fp32', 'bf16'].includes(precision) ||
  !(reps > 0) ||
  !['wasm', 'cpu'].includes(backend)
) {
  process.stderr.write('usage: optim-step.ts [small|gpt2] [fp32|bf16] [reps] [wasm|cpu]\n');
  process.exit(2);
}
await startRuntime({
  backend: backend as 'wasm' | 'cpu',
  ...(precision === 'bf16' ? { precision: 'bf16' } : {}),
});
const c = bf16Cases(false).find((x) => x.name === (which === 'gpt2' ? 'gpt2-124M' : 'small'))!;
const { config, batch: B, seq: T } = c;
const token = tokenStream(config.vocabSize);
const batch = rightPad(
  Array.from({ length: B }, () => Array.from({ length: T }, token)),
  0,
);
const model = CausalLM.init(config, { seed: 1 });
const offload = c.train.trainer?.offload ?? false;
const opt = new AdamW(model.params, model.specs, { lr: 1e-4, offload });
const names = [...model.params.keys()];
const vars = names.map((n) => model.params.get(n)!);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function times(label: string, f: () => unknown | Promise<unknown>, n = reps) {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    xs.push(performance.now() - t0);
  }
  xs.sort((a, b) => a - b);
  say(
    `${label.padEnd(44)} best ${xs[0].toFixed(1).padStart(7)} ms, median ${xs[xs.length >> 1].toFixed(1).padStart(7)} ms`,
  );
  return xs[0];
}

const loss = () => lmLoss(model, batch).loss;
const addon = nativeOptim();
const loops = hostLoops();
const total = vars.reduce((a, v) => a + v.size, 0);
say(
  `${which} ${precision} on ${backend}, ${total} parameters in ${vars.length} tensors, ${process.env.TROUPE_BLAS_THREADS ?? 'default'} BLAS threads, native ${addon ? 'on' : 'off'}, offload ${offload}`,
);
try {
  const { value, grads } = tf.variableGrads(loss, vars);
  value.dispose();
  const missing = vars.filter((v) => !grads[v.name]).length;
  say(`gradients: ${Object.keys(grads).length} (${missing} parameters without one)`);
  const gradNorm = async () => {
    let sq = 0;
    for (const v of vars) {
      const g = grads[v.name];
      if (g) sq += loops.sumSquares(hostView(g) ?? ((await g.data()) as Float32Array));
    }
    return Math.sqrt(sq);
  };
  await times('norm: sumSquares per gradient', gradNorm);
  // (absent from builds before it: the bench runs on those too, for a before/after)
  const many = typeof addon?.sumSquaresMany === 'function';
  if (many) {
    await times('norm: sumSquaresMany over the gradients', () =>
      loops.sumSquaresMany(vars.map((v) => hostView(grads[v.name])!)),
    );
  }
  // The accumulating path (several micro-batches or replicas): the sums into one host buffer.
  const flat = new Float32Array(total);
  const offsets = Float64Array.from(
    vars.map((_, i) => vars.slice(0, i).reduce((a, v) => a + v.size, 0)),
  );
  await times('accumulate: axpy per gradient', () => {
    for (const [i, v] of vars.entries())
      loops.axpy(flat, offsets[i], hostView(grads[v.name])!, 0.5);
  });
  if (many) {
    await times('accumulate: axpyMany over the gradients', () =>
      loops.axpyMany(
        flat,
        offsets,
        vars.map((v) => hostView(grads[v.name])!),
        0.5,
      ),
    );
  }
  await times('accumulate: norm of the sums (sumSquares)', () => loops.sumSquares(flat));
  const sums = new Map(
    names.map((n, i) => [n, flat.subarray(offsets[i], offsets[i] + vars[i].size)]),
  );
  if (!offload) {
    await times('accumulate: tensors of the sums, opt.step', () => {
      const ts = new Map([...sums].map(([n, x], i) => [n, tf.tensor(x, vars[i].shape)]));
      opt.step(ts, 1e-4, 0.5);
      tf.dispose([...ts.values()]);
    });
    if (many) await times('accumulate: opt.step on the host sums', () => opt.step(sums, 1e-4, 0.5));
  }
  const gradMap = new Map(names.map((n, i) => [n, grads[vars[i].name]]));
  await times(offload ? 'AdamW: opt.stepOnHost' : 'AdamW: opt.step', () =>
    offload ? opt.stepOnHost(gradMap, 1e-4, 0.5) : opt.step(gradMap, 1e-4, 0.5),
  );
  if (addon) {
    // The same passes on host arrays, no tfjs in between.
    // The model's values and gradients, copied to host arrays.
    const host: { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array }[] = [];
    for (const v of vars) {
      host.push({
        p: new Float32Array((await v.data()) as Float32Array),
        g: new Float32Array((await grads[v.name].data()) as Float32Array),
        m: new Float32Array(v.size),
        v: new Float32Array(v.size),
      });
    }
    if (many) {
      await times('bare: sumSquaresMany (host arrays)', () =>
        addon.sumSquaresMany(host.map((h) => h.g)),
      );
      const sc = new Float64Array(8 * host.length);
      for (let k = 0; k < host.length; k++)
        sc.set([1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001, 0.5], 8 * k);
      await times('bare: adamwSteps, in place (host arrays)', () =>
        addon.adamwSteps(
          host.map((h) => h.p),
          host.map((h) => h.g),
          host.map((h) => h.m),
          host.map((h) => h.v),
          sc,
        ),
      );
    }
    await times('bare: sumSquares per tensor (host arrays)', () => {
      let sq = 0;
      for (const h of host) sq += addon.sumSquares(h.g);
      return sq;
    });
    await times('bare: adamwStep per tensor, in place', () => {
      for (const h of host)
        addon.adamwStep(h.p, h.g, h.m, h.v, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001, 0.5);
    });
    const outs = host.map((h) => ({
      p: new Float32Array(h.p.length),
      m: new Float32Array(h.p.length),
      v: new Float32Array(h.p.length),
    }));
    await times('bare: adamwStep per tensor, to new arrays', () => {
      for (const [i, h] of host.entries())
        addon.adamwStep(
          h.p,
          h.g,
          h.m,
          h.v,
          1e-4,
          0.9,
          0.999,
          1e-8,
          0.01,
          0.1,
          0.001,
          0.5,
          outs[i].p,
          outs[i].m,
          outs[i].v,
        );
    });
  }
  tf.dispose(Object.values(grads));
  // Whole steps against bare passes, alternated (the difference is the part above).
  const step = () =>
    optimizerStep(model, opt, [() => ({ loss: loss(), weight: B * T })], {
      lr: 1e-4,
      maxGradNorm: 1,
    });
  const fwdBwd = async () => {
    const r = tf.variableGrads(loss, vars);
    await r.value.data();
    tf.dispose([r.value, ...Object.values(r.grads)]);
  };
  await step();
  const st: number[] = [];
  const fb: number[] = [];
  const n = Math.min(reps, 5);
  for (let i = 0; i < n; i++) {
    let t0 = performance.now();
    await step();
    st.push(performance.now() - t0);
    t0 = performance.now();
    await fwdBwd();
    fb.push(performance.now() - t0);
  }
  say(`optimizerStep: ${st.map((x) => x.toFixed(0)).join(' ')} ms`);
  say(`fwd + bwd:     ${fb.map((x) => x.toFixed(0)).join(' ')} ms`);
  say(
    `difference of the medians: ${(st.sort((a, b) => a - b)[n >> 1] - fb.sort((a, b) => a - b)[n >> 1]).toFixed(0)} ms`,
  );
} finally {
  opt.dispose();
  model.dispose();
}
