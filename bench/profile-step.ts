/**
 * Where one training step's time goes, kernel by kernel (#17):
 *
 *   TROUPE_BLAS_THREADS=1 npx tsx bench/profile-step.ts [small|gpt2|grpo] [fp32|bf16] [share]
 *
 * Builds the bench's model config (bench/suites/model.ts: small = d 384, L 6, 8 × 128 tokens;
 * gpt2 = GPT-2-124M, 4 × 128 tokens, AdamW's moments on the host as the trainers keep them at
 * that size; grpo = the RL suite's GRPO job's tiny GPT-2 at its update's 64 × 64 tokens,
 * bench/suites/rl-grpo.ts; its rows are 8 prompts × 8 samples, and the loss is the log-probs of
 * the 32 response tokens, each prompt's 32 tokens run once with `share`: the update's
 * sharePrefix) on wasm with the native kernels, takes trainer steps (`optimizerStep`: fwd + bwd,
 * clip 1.0, AdamW) after a warm-up, then one forward + backward under `tf.profile`, and prints
 * wall and process CPU time per step and per forward + backward, and each kernel's summed
 * `kernelTimeMs` by name and by name and input shapes. A custom gradient's forward shows as an
 * `unnamed scope` that also contains the kernels it ran (counted twice in the total). It also
 * times the bench's forward (forward + every position's logits, no gradients), and with
 * TROUPE_PROFILE_PASS=forward profiles that instead of the forward + backward;
 * TROUPE_PROFILE_SPLIT_GRAD=1 runs TroupeLinear's bf16 gradients as separate kernels, and
 * TROUPE_PROFILE_ATTN_TRANSPOSE=1 attention with the head transposes, TROUPE_PROFILE_SPLIT_QKV=1
 * q, k and v as three products (TroupeLinear3 unregistered; =grad: TroupeLinear3Grad). The step
 * minus the forward + backward is the gradient norm and the AdamW update. Wall times on a
 * shared machine move with its load: the CPU times and the shares are the steadier figures.
 */
import { rightPad } from '../src/data/batching/collate.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { AdamW, CausalLM, lmLoss } from '../src/policy/index.js';
import { targetLogProbs } from '../src/policy/target-logprobs.js';
import { optimizerStep } from '../src/policy/train-step.js';
import { bf16Cases } from './suites/model.js';
import { GRPO_JOB, grpoModelConfig } from './suites/rl-grpo.js';
import { sharedPrefixRows, tokenStream } from './tokens.js';

const [which = 'gpt2', precision = 'bf16', share = ''] = process.argv.slice(2);
if (!['small', 'gpt2', 'grpo'].includes(which) || !['fp32', 'bf16'].includes(precision)) {
  process.stderr.write('usage: profile-step.ts [small|gpt2|grpo] [fp32|bf16]\n');
  process.exit(2);
}
await startRuntime({ backend: 'wasm', ...(precision === 'bf16' ? { precision: 'bf16' } : {}) });
// TROUPE_PROFILE_SPLIT_GRAD=1: TroupeLinear's bf16 gradients as two BatchMatMul and a Sum, as
// before TroupeLinearGrad (its gradient falls back to them where the kernel is not registered)
if (process.env.TROUPE_PROFILE_SPLIT_GRAD === '1') tf.unregisterKernel('TroupeLinearGrad', 'wasm');
// TROUPE_PROFILE_ATTN_TRANSPOSE=1: attention splits and merges the heads (Transposes) instead of
// reading and writing them in place (the in-place kernels unregistered)
if (process.env.TROUPE_PROFILE_ATTN_TRANSPOSE === '1')
  for (const k of ['TroupeAttnScores', 'TroupeAttnValues']) tf.unregisterKernel(k, 'wasm');
// TROUPE_PROFILE_SPLIT_QKV=1: q, k and v as three TroupeLinear (x packed three times) instead of
// one TroupeLinear3; =grad: one TroupeLinear3, its gradient TroupeLinearGrad per output
if (process.env.TROUPE_PROFILE_SPLIT_QKV === '1') tf.unregisterKernel('TroupeLinear3', 'wasm');
if (process.env.TROUPE_PROFILE_SPLIT_QKV === 'grad')
  tf.unregisterKernel('TroupeLinear3Grad', 'wasm');
const j = GRPO_JOB;
const c =
  which === 'grpo'
    ? {
        config: grpoModelConfig(),
        batch: Number(process.env.TROUPE_PROFILE_PROMPTS ?? j.prompts) * j.samples,
        seq: 64,
        train: {} as { trainer?: { offload: boolean } },
      }
    : bf16Cases(false).find((x) => x.name === (which === 'gpt2' ? 'gpt2-124M' : 'small'))!;
const { config, batch: B, seq: T } = c;
const token = tokenStream(config.vocabSize);
// grpo: each prompt (the first T/2 tokens) repeated by its samples
const rows =
  which === 'grpo'
    ? sharedPrefixRows(token, B, T, j.samples)
    : Array.from({ length: B }, () => Array.from({ length: T }, token));
const batch = rightPad(rows, 0);
/** The step's loss: the LM loss, or (grpo) the responses' log-probs summed. */
const lossOf = (): { loss: tf.Scalar; tokens: number } => {
  if (which !== 'grpo') return lmLoss(model, batch);
  const { logp } = targetLogProbs(model, batch, {
    start: T / 2,
    entropy: 'metric',
    sharePrefix: share === 'share',
  });
  return { loss: tf.neg(tf.mean(logp)) as tf.Scalar, tokens: B * (T / 2) };
};
const model = CausalLM.init(config, { seed: 1 });
const opt = new AdamW(model.params, model.specs, {
  lr: 1e-4,
  offload: c.train.trainer?.offload ?? false,
});
const vars = [...model.params.values()];

/** wall and process CPU ms of `f` */
async function timed(f: () => Promise<unknown>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const cpu = process.cpuUsage(c0);
  return [performance.now() - t0, (cpu.user + cpu.system) / 1000];
}
const step = () =>
  optimizerStep(
    model,
    opt,
    [
      () => {
        const { loss, tokens } = lossOf();
        return { loss, weight: tokens };
      },
    ],
    { lr: 1e-4, maxGradNorm: 1 },
  );
const fwdBwd = async () => {
  const { value, grads } = tf.variableGrads(() => lossOf().loss, vars);
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
};
/** The bench's forward figure (bench/suites/model-measure.ts): forward + every position's logits. */
const forwardOnly = async () => {
  const logits = tf.tidy(() => model.logits(model.forward(batch)));
  await logits.data();
  logits.dispose();
};
// TROUPE_PROFILE_PASS=forward: the profile is of that forward instead of the forward + backward
const profiled = process.env.TROUPE_PROFILE_PASS === 'forward' ? forwardOnly : fwdBwd;
const say = (line: string) => process.stdout.write(`${line}\n`);
const fmt = (xs: [number, number][]) =>
  `wall ${xs.map(([w]) => w.toFixed(0)).join(' ')} ms, CPU ${xs.map(([, u]) => u.toFixed(0)).join(' ')} ms`;
try {
  await step();
  const steps: [number, number][] = [];
  const passes: [number, number][] = [];
  const forwards: [number, number][] = [];
  for (let i = 0; i < 3; i++) {
    steps.push(await timed(step));
    passes.push(await timed(fwdBwd));
    forwards.push(await timed(forwardOnly));
  }
  const best = Math.min(...steps.map(([w]) => w));
  say(
    `${which} ${precision}${share ? ' (shared prompts)' : ''}, ${B}×${T} tokens, ${process.env.TROUPE_BLAS_THREADS ?? 'default'} BLAS threads`,
  );
  say(`trainer step: ${fmt(steps)} (best ${((B * T) / (best / 1000)).toFixed(0)} tokens/s)`);
  say(`fwd + bwd:    ${fmt(passes)}`);
  const bestFwd = Math.min(...forwards.map(([w]) => w));
  say(`forward:      ${fmt(forwards)} (best ${((B * T) / (bestFwd / 1000)).toFixed(0)} tokens/s)`);
  const prof = await tf.profile(profiled);
  const byShape = new Map<string, number>();
  const byName = new Map<string, number>();
  const calls = new Map<string, number>();
  for (const k of prof.kernels) {
    const ms = await (k.kernelTimeMs as number | Promise<number>);
    const key = `${k.name} ${JSON.stringify(k.inputShapes?.slice(0, 2))}`;
    byShape.set(key, (byShape.get(key) ?? 0) + ms);
    byName.set(k.name, (byName.get(k.name) ?? 0) + ms);
    calls.set(key, (calls.get(key) ?? 0) + 1);
    calls.set(k.name, (calls.get(k.name) ?? 0) + 1);
  }
  const total = [...byName].reduce((a, [name, ms]) => a + (name === 'unnamed scope' ? 0 : ms), 0);
  const n = [...byName].reduce(
    (a, [name]) => a + (name === 'unnamed scope' ? 0 : calls.get(name)!),
    0,
  );
  const line = (k: string, ms: number) =>
    say(
      `${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / total).toFixed(1).padStart(5)} % ${String(calls.get(k)).padStart(5)}×  ${k}`,
    );
  say(
    `\n${profiled === fwdBwd ? 'fwd + bwd' : 'forward + logits'} under tf.profile, ${total.toFixed(0)} ms of kernels in ${n} calls (unnamed scopes left out):`,
  );
  const rowsShown = Number(process.env.TROUPE_PROFILE_ROWS ?? 30);
  for (const [k, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, rowsShown)) line(k, ms);
  say('\nby kernel and input shapes:');
  for (const [k, ms] of [...byShape].sort((a, b) => b[1] - a[1]).slice(0, rowsShown)) line(k, ms);
} finally {
  opt.dispose();
  model.dispose();
}
