/**
 * One measurement of the `memory` and `qlora` suites, in a process of its own so that its peak
 * RSS is its own: load a Hugging Face checkpoint on a backend as the trainers do (Trainable) and
 * run one phase, then print one `RESULT {json}` line (tokens/s, CPU seconds, peak RSS, the
 * predictor's figures for the same job).
 *
 *   tsx bench/suites/memory-child.ts DIR PHASE BACKEND BATCH SEQ [--reps N] [--checkpoint]
 *     [--offload] [--precision bf16] [--rank R] [--targets q,v]
 *   PHASE: forward | lora | qlora | full | grpo
 *
 * forward: a no-grad forward of BATCH×SEQ tokens and their log-probs. lora: an SFT step (LoRA,
 * rank 8 on q, v by default; loss, backward, clip, AdamW), the base frozen as Trainable freezes
 * it. qlora: the same with the base stored as NF4 (model.quantize: nf4). full: every weight
 * trained. grpo: one GRPO iteration in one thread: BATCH samples of SEQ/2 new tokens from one
 * SEQ/2-token prompt with the KV cache, group-normalised rewards, the reference model's
 * log-probs (a second, frozen copy, as the reference actor holds), the clipped surrogate plus k3
 * KL (β 0.04), backward, AdamW on every weight. `troupe grpo` runs these in separate actor
 * threads; the memory adds up the same way.
 *
 * A training phase runs one warm-up step and then --reps timed ones (default 1); each timed
 * step's wall and CPU seconds (user + system of the whole process) are reported. CPU seconds
 * tell the work apart from the waiting when other processes share the cores.
 */

import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ppoPolicyLoss } from '../../src/algorithms/losses/ppo.js';
import { assertFits } from '../../src/algorithms/memory-check.js';
import { RandomStream } from '../../src/kernels/random.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { type CausalLM, generate, lmLoss, loadHfModel } from '../../src/policy/index.js';
import { readModelConfig } from '../../src/policy/io.js';
import { type MemoryJob, predictMemory } from '../../src/policy/memory.js';
import { quantizedBase } from '../../src/policy/quantize/base.js';
import { resolveModelSource } from '../../src/policy/source.js';
import { targetLogProbs } from '../../src/policy/target-logprobs.js';
import { Trainable } from '../../src/policy/trainable.js';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    reps: { type: 'string', default: '1' },
    checkpoint: { type: 'boolean', default: false },
    offload: { type: 'boolean', default: false },
    precision: { type: 'string', default: 'fp32' },
    rank: { type: 'string', default: '8' },
    targets: { type: 'string', default: 'q,v' },
  },
});
const [dir, phase, backend, batchArg, seqArg] = positionals;
const B = Number(batchArg);
const T = Number(seqArg);
const reps = Number(o.reps);
const rank = Number(o.rank);
const LORA = { rank, alpha: 2 * rank, dropout: 0, targetModules: o.targets.split(',') };
const now = () => performance.now();
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const rssMiB = () => process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB

function rows(n: number, len: number, vocab: number, seed: number): number[][] {
  const r = RandomStream.of({ seed, step: 0, actor: 'bench', purpose: 'ids' }).uniform(n * len);
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: len }, (_, t) => Math.floor(r[i * len + t] * (vocab - 1))),
  );
}

function batchOf(ids: number[][]) {
  const n = ids[0].length;
  return {
    ids: Int32Array.from(ids.flat()),
    mask: new Uint8Array(ids.length * n).fill(1),
    batch: ids.length,
    length: n,
  } as Parameters<typeof lmLoss>[1];
}

/** Warm-up, then `reps` timed calls: wall and CPU seconds of each. */
async function timed(n: number, f: () => Promise<unknown>) {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let rep = 0; rep <= n; rep++) {
    const [w, c] = [now(), cpuSeconds()];
    await f();
    if (rep > 0) {
      wall.push((now() - w) / 1000);
      cpu.push(cpuSeconds() - c);
    }
  }
  return { wall, cpu };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function trainable(method: 'lora' | 'qlora' | 'full') {
  return resolveModelSource(dir).then((source) =>
    Trainable.create(
      {
        model: { source },
        optimizer: { lr: 1e-5, offload: o.offload },
        gradientCheckpointing: o.checkpoint,
        ...(method === 'full' ? {} : { lora: { ...LORA, seed: 1 } }),
        ...(method === 'qlora' ? { quantize: 'nf4' as const } : {}),
      },
      'bench',
    ),
  );
}

/** One GRPO iteration (see the top of the file): generation, scoring, loss, backward, AdamW. */
async function grpoIteration(t: Trainable, reference: CausalLM) {
  const model = t.model;
  const c = model.config;
  const P = T / 2;
  const prompt = rows(1, P, c.vocabSize, 3)[0];
  const gen = await generate(
    model,
    Array.from({ length: B }, () => prompt),
    {
      maxNewTokens: T - P,
      temperature: 1,
      rng: RandomStream.of({ seed: 4, step: 0, actor: 'bench', purpose: 'sample' }),
    },
  );
  // a verifiable-reward stand-in: the share of even token ids in the response
  const rewards = gen.responses.map(
    (r) => r.filter((x) => x % 2 === 0).length / Math.max(1, r.length),
  );
  const mean = rewards.reduce((a, b) => a + b, 0) / B;
  const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / B) + 1e-6;
  const seq = gen.sequences;
  const A = seq.length - 1;
  const L = seq.length;
  const mask = Float32Array.from(
    { length: B * A },
    (_, i) => gen.actionMask[Math.floor(i / A) * L + (i % A) + 1],
  );
  const refLp = tf.tidy(() => targetLogProbs(reference, seq).logp);
  const oldLp = tf.tidy(() => targetLogProbs(model, seq).logp);
  const adv = tf.tensor2d(
    Float32Array.from({ length: B * A }, (_, i) => (rewards[Math.floor(i / A)] - mean) / std),
    [B, A],
  );
  const m = tf.tensor2d(mask, [B, A]);
  const loss = () =>
    tf.tidy(() => {
      const logp = targetLogProbs(model, seq, {}, { checkpoint: o.checkpoint }).logp;
      const pg = ppoPolicyLoss(
        { logp, oldLogp: oldLp, advantages: adv, mask: m },
        { clipLow: 0.2, clipHigh: 0.2, aggMode: 'seq-mean-token-mean' },
      );
      const d = tf.sub(refLp, logp); // k3: e^{ref−θ} − (ref−θ) − 1
      const k3 = tf.sub(tf.sub(tf.exp(d), d), 1);
      const kl = tf.div(tf.sum(tf.mul(k3, m)), tf.sum(m));
      tf.dispose(Object.values(pg.metrics));
      return tf.add(pg.loss, tf.mul(kl, 0.04)) as tf.Scalar;
    });
  try {
    return (await t.step([() => ({ loss: loss(), weight: 1 })], 1e-6, 1)).loss;
  } finally {
    tf.dispose([refLp, oldLp, adv, m]);
  }
}

async function main() {
  const runtime = await startRuntime({
    backend: backend as 'cpu' | 'wasm',
    precision: o.precision as 'fp32' | 'bf16',
  });
  const method = phase === 'forward' ? 'none' : phase === 'grpo' ? 'full' : phase;
  const c = await readModelConfig(dir);
  const job: MemoryJob = {
    config: c,
    method: method === 'qlora' ? 'lora' : (method as MemoryJob['method']),
    ...(method === 'lora' || method === 'qlora' ? { lora: LORA } : {}),
    ...(method === 'qlora' ? { quantize: 'nf4' as const } : {}),
    // GRPO: the KV cache, and the reference's frozen copy of the weights (the reference actor)
    ...(phase === 'grpo' ? { generation: { batch: B, length: T }, frozenCopies: 1 } : {}),
    checkpoint: o.checkpoint,
    offloadOptimizer: o.offload,
    batch: B,
    seq: T,
  };
  // "will it fit", before anything is allocated, as the trainers ask it (OUT_OF_MEMORY if not)
  assertFits([{ actor: 'policy', backend: runtime.backend, job }]);
  const t0 = now();
  const t = method === 'none' ? undefined : await trainable(method as 'lora' | 'qlora' | 'full');
  const model = t?.model ?? (await loadHfModel(dir));
  const reference = phase === 'grpo' ? await loadHfModel(dir) : undefined;
  const loadS = (now() - t0) / 1000;
  const [rssLoaded, peakLoaded] = [process.memoryUsage().rss / 2 ** 20, rssMiB()];
  let loss: number | undefined;
  let times: { wall: number[]; cpu: number[] };
  if (phase === 'forward') {
    const b = batchOf(rows(B, T, c.vocabSize, 1));
    times = await timed(reps, async () => {
      const lp = tf.tidy(() => targetLogProbs(model, b).logp);
      await lp.data();
      lp.dispose();
    });
  } else if (phase === 'grpo') {
    times = await timed(reps, async () => {
      loss = await grpoIteration(t!, reference!);
    });
    reference!.dispose();
  } else if (phase === 'lora' || phase === 'qlora' || phase === 'full') {
    const b = batchOf(rows(B, T, c.vocabSize, 2));
    let step = 0;
    times = await timed(reps, async () => {
      const out = await t!.step(
        [() => ({ loss: lmLoss(model, b, { checkpoint: o.checkpoint }).loss, weight: 1 })],
        1e-5,
        ++step,
      );
      loss = out.loss;
    });
  } else throw new Error(`unknown phase ${phase}`);
  const p = predictMemory(job);
  const seconds = median(times.wall);
  const base = quantizedBase(model);
  const out = {
    model: dir.split('/').pop(),
    phase,
    backend: runtime.backend,
    precision: runtime.precision,
    blasThreads: runtime.blasThreads,
    batch: B,
    seq: T,
    checkpoint: o.checkpoint,
    offload: o.offload,
    lora: job.lora,
    params: p.params,
    trainableParams: p.trainableParams,
    loadS,
    rssLoadedMiB: Math.round(rssLoaded),
    peakRssLoadMiB: Math.round(peakLoaded),
    peakRssMiB: Math.round(rssMiB()),
    predictedMiB: Math.round((p.peak + p.hostOptimizer) / 2 ** 20),
    predicted: p,
    nf4Bytes: base?.bytes ?? 0,
    tokensPerS: (B * T) / seconds,
    seconds,
    cpuSeconds: median(times.cpu),
    wallSeconds: times.wall,
    cpuSecondsEach: times.cpu,
    loss,
    // other processes on the cores: wall seconds stretch, CPU seconds do not
    loadAverage: loadavg()[0],
  };
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  const code = (e as { code?: unknown }).code;
  const error = String((e as Error).stack ?? e);
  process.stdout.write(`RESULT ${JSON.stringify({ error, ...(code ? { code } : {}) })}\n`);
  process.exit(1);
});
