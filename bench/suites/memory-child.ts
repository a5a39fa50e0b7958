/**
 * One measurement of the `memory` suite, in a process of its own so that its peak RSS is its
 * own: load a Hugging Face checkpoint on a backend and run one phase, then print one JSON line
 * (tokens/s, peak RSS, the predictor's figures for the same job).
 *
 *   tsx bench/suites/memory-child.ts DIR PHASE BACKEND BATCH SEQ
 *   PHASE: forward | lora | full | grpo
 *
 * forward: a no-grad forward of BATCH×SEQ tokens and their log-probs. lora: an SFT step (LoRA
 * rank 8 on q, v; loss, backward, clip, AdamW). full: the same with every weight trained.
 * grpo: one GRPO iteration in one thread: BATCH samples of SEQ/2 new tokens from one SEQ/2-token
 * prompt with the KV cache, group-normalised rewards, the reference model's log-probs (a second,
 * frozen copy, as the reference actor holds), the clipped surrogate plus k3 KL (β 0.04),
 * backward, AdamW on every weight. `troupe grpo` runs these in separate actor threads; the
 * memory adds up the same way.
 */

import { ppoPolicyLoss } from '../../src/algorithms/losses/ppo.js';
import { RandomStream } from '../../src/kernels/random.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import {
  AdamW,
  type CausalLM,
  clipGradNorm,
  generate,
  Lora,
  lmLoss,
  loadHfModel,
} from '../../src/policy/index.js';
import { type MemoryJob, predictMemory } from '../../src/policy/memory.js';
import { targetLogProbs } from '../../src/policy/target-logprobs.js';

const [dir, phase, backend, batchArg, seqArg] = process.argv.slice(2);
const B = Number(batchArg);
const T = Number(seqArg);
const LORA = { rank: 8, alpha: 16, dropout: 0, targetModules: ['q', 'v'] };
const now = () => performance.now();
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

async function trainStep(model: CausalLM, names: string[], loss: () => tf.Scalar, adamw: AdamW) {
  const vars = names.map((n) => model.params.get(n)!);
  const { value, grads } = tf.variableGrads(loss, vars);
  const lossValue = (await value.data())[0];
  value.dispose();
  const named = new Map(names.map((n) => [n, grads[model.params.get(n)!.name]]));
  const clip = await clipGradNorm(named, 1.0);
  adamw.step(clip.grads);
  tf.dispose([...named.values(), ...clip.grads.values()]);
  return lossValue;
}

async function main() {
  await startRuntime({ backend: backend as 'cpu' | 'wasm' });
  const t0 = now();
  const model = await loadHfModel(dir);
  const loadS = (now() - t0) / 1000;
  const rssLoaded = rssMiB();
  const c = model.config;
  let job: MemoryJob;
  let tokens = 0;
  let seconds = 0;
  let loss: number | undefined;
  if (phase === 'forward') {
    job = { config: c, method: 'none', batch: B, seq: T };
    const b = batchOf(rows(B, T, c.vocabSize, 1));
    for (let rep = 0; rep < 2; rep++) {
      const s = now();
      const lp = tf.tidy(() => targetLogProbs(model, b).logp);
      await lp.data();
      lp.dispose();
      seconds = (now() - s) / 1000;
    }
    tokens = B * T;
  } else if (phase === 'lora' || phase === 'full') {
    const lora = phase === 'lora' ? new Lora(model, LORA, { seed: 1 }) : undefined;
    const names = lora ? lora.trainableNames : [...model.params.keys()];
    job = {
      config: c,
      method: lora ? 'lora' : 'full',
      ...(lora ? { lora: LORA } : {}),
      batch: B,
      seq: T,
    };
    const adamw = new AdamW(new Map(names.map((n) => [n, model.params.get(n)!])), model.specs, {
      lr: 1e-5,
    });
    const b = batchOf(rows(B, T, c.vocabSize, 2));
    for (let rep = 0; rep < 2; rep++) {
      const s = now();
      loss = await trainStep(model, names, () => lmLoss(model, b).loss, adamw);
      seconds = (now() - s) / 1000;
    }
    tokens = B * T;
  } else if (phase === 'grpo') {
    const reference = await loadHfModel(dir);
    const P = T / 2;
    const prompt = rows(1, P, c.vocabSize, 3)[0];
    job = { config: c, method: 'full', batch: B, seq: T, generation: { batch: B, length: T } };
    const names = [...model.params.keys()];
    const adamw = new AdamW(model.params, model.specs, { lr: 1e-6 });
    const s = now();
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
      (r) => r.filter((t) => t % 2 === 0).length / Math.max(1, r.length),
    );
    const mean = rewards.reduce((a, b) => a + b, 0) / B;
    const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / B) + 1e-6;
    const seq = gen.sequences;
    const L = seq.length;
    const A = L - 1;
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
    loss = await trainStep(
      model,
      names,
      () =>
        tf.tidy(() => {
          const logp = targetLogProbs(model, seq).logp;
          const pg = ppoPolicyLoss(
            { logp, oldLogp: oldLp, advantages: adv, mask: m },
            { clipLow: 0.2, clipHigh: 0.2, aggMode: 'seq-mean-token-mean' },
          );
          const d = tf.sub(refLp, logp); // k3: e^{ref−θ} − (ref−θ) − 1
          const k3 = tf.sub(tf.sub(tf.exp(d), d), 1);
          const kl = tf.div(tf.sum(tf.mul(k3, m)), tf.sum(m));
          tf.dispose(Object.values(pg.metrics));
          return tf.add(pg.loss, tf.mul(kl, 0.04)) as tf.Scalar;
        }),
      adamw,
    );
    seconds = (now() - s) / 1000;
    tokens = B * T;
    tf.dispose([refLp, oldLp, adv, m]);
    reference.dispose();
  } else throw new Error(`unknown phase ${phase}`);
  const p = predictMemory(job);
  // the reference copy of a GRPO iteration: one more set of weights and its forward
  const extra = phase === 'grpo' ? p.weights : 0;
  const out = {
    model: dir.split('/').pop(),
    phase,
    backend,
    batch: B,
    seq: T,
    params: p.params,
    loadS,
    rssLoadedMiB: Math.round(rssLoaded),
    peakRssMiB: Math.round(rssMiB()),
    predictedMiB: Math.round((p.peak + p.hostOptimizer + extra) / 2 ** 20),
    predicted: p,
    tokensPerS: tokens / seconds,
    seconds,
    loss,
  };
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

main().catch((e) => {
  process.stdout.write(`RESULT ${JSON.stringify({ error: String((e as Error).stack ?? e) })}\n`);
  process.exit(1);
});
