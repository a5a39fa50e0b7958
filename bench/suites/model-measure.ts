/**
 * The measurements of the `model` suite for one model config on the current backend: forward,
 * KV-cache generation, a full training step (forward + backward + clip + AdamW) with and without
 * gradient checkpointing, and memory. Kept apart from the suite so a test can run it on a very
 * small config, and so the suite can run each config in a child process of its own.
 */
import { leftPad, rightPad, type TokenBatch } from '../../src/data/batching/collate.js';
import { matmulPrecision } from '../../src/kernels/precision.js';
import * as tf from '../../src/kernels/tf.js';
import { holdBf16, modelWeightBytes } from '../../src/policy/bf16.js';
import {
  AdamW,
  CausalLM,
  clipGradNorm,
  generate,
  KVCache,
  lmLoss,
  type ModelConfig,
} from '../../src/policy/index.js';
import { optimizerStep } from '../../src/policy/train-step.js';
import { xorshift32 } from '../tokens.js';

export type TrainVariant = 'plain' | 'checkpoint';

/** One config to measure and how many repetitions each figure gets. */
export interface ModelCase {
  /** Row label, e.g. `tiny`. */
  readonly name: string;
  readonly config: ModelConfig;
  /** Training and forward batch: `batch` rows of `seq` tokens. */
  readonly batch: number;
  readonly seq: number;
  /** Measured forward passes, after one warm-up pass. */
  readonly forwardReps: number;
  /** Generation: batch sizes, prompt length, new tokens, measured runs per batch size. */
  readonly generate?: {
    readonly batches: readonly number[];
    readonly prompt: number;
    readonly newTokens: number;
    readonly reps: number;
  };
  readonly train: {
    /** Which variants run (interleaved, one warm-up step each). */
    readonly variants: readonly TrainVariant[];
    /** Measured steps per variant, after the warm-up. */
    readonly steps: number;
    /**
     * Whether the step includes clip + AdamW (the full step). Without it only the forward +
     * backward is timed and no optimizer state is allocated; `skipReason` says why.
     */
    readonly optimizer: boolean;
    readonly skipReason?: string;
    /**
     * Also measure steps the way the trainers take them (`optimizerStep`: plain fwd+bwd, clip,
     * native AdamW where built), after a warm-up; `offload` keeps the AdamW moments on the host.
     */
    readonly trainer?: { readonly steps: number; readonly offload: boolean };
  };
  /** Profile tfjs memory (`tf.profile` peakBytes) in the warm-up steps. */
  readonly memory: boolean;
}

/** A figure of one config: `value` in `unit`, plus whatever details it has. */
export interface Figure {
  readonly figure: string;
  readonly value: number;
  readonly unit: string;
  readonly [extra: string]: unknown;
}

export interface ModelRow extends Figure {
  readonly backend: string;
  readonly config: string;
}

export interface MeasureHooks {
  readonly backend: string;
  /** A progress line (config, figure, value). */
  readonly log: (line: string) => void;
  /** Each row as soon as it is measured (the suite streams them out of a child process). */
  readonly onRow?: (row: ModelRow) => void;
  /** Before each phase, so a crash can be placed. */
  readonly onPhase?: (phase: string) => void;
  readonly seed?: number;
}

export interface ModelMeasurement {
  readonly rows: ModelRow[];
  /** What was skipped and why, and leaks (as `ERROR: …`). */
  readonly notes: string[];
}

/** A small deterministic generator for token ids (the values do not matter, only the shapes). */
function tokenSource(seed: number): (n: number, vocab: number) => number[] {
  const next = xorshift32(seed >>> 0 || 1);
  return (n, vocab) => Array.from({ length: n }, () => next() % vocab);
}

const now = () => performance.now();

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Wait for the backend to finish everything queued (immediate on the synchronous CPU backends). */
async function sync(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), [0], [1]));
  try {
    await one.data();
  } finally {
    one.dispose();
  }
}

interface StepTiming {
  readonly totalMs: number;
  readonly fwdBwdMs: number;
  readonly clipMs: number;
  readonly optMs: number;
  /** ‖g‖₂ that clipGradNorm read (NaN without the optimizer). */
  readonly gradNorm: number;
  /** The same norm read one grad at a time (no addN), when the step was verified. */
  readonly referenceNorm?: number;
  /** tfjs `peakBytes` of the forward + backward, and of clip + AdamW (when profiled). */
  readonly fwdBwdPeak?: number;
  readonly updatePeak?: number;
}

/**
 * One training step: grads of the LM loss by `tf.variableGrads`, global-norm clip to 1.0, then
 * AdamW (when `adamw` is given). With `profile`, the two halves run under `tf.profile`.
 */
async function trainStep(
  model: CausalLM,
  adamw: AdamW | undefined,
  batch: TokenBatch,
  checkpoint: boolean,
  profile: boolean,
  verify = false,
): Promise<StepTiming> {
  const vars = [...model.params.values()];
  const byVarName = new Map([...model.params].map(([n, v]) => [v.name, n]));
  const probe = vars.reduce((a, b) => (b.size < a.size ? b : a));
  const backward = () => tf.variableGrads(() => lmLoss(model, batch, { checkpoint }).loss, vars);

  const t0 = now();
  let fwdBwdPeak: number | undefined;
  let out: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
  if (profile) {
    fwdBwdPeak = (
      await tf.profile(() => {
        out = backward();
      })
    ).peakBytes;
  } else {
    out = backward();
  }
  const { value, grads } = out!;
  const loss = (await value.data())[0];
  value.dispose();
  const named = new Map<string, tf.Tensor>();
  for (const [varName, g] of Object.entries(grads)) named.set(byVarName.get(varName)!, g);
  const t1 = now();

  let clipMs = 0;
  let gradNorm = Number.NaN;
  let clipped: Map<string, tf.Tensor> | undefined;
  let updatePeak: number | undefined;
  let referenceNorm: number | undefined;
  let t2 = Number.NaN;
  try {
    if (!Number.isFinite(loss)) throw new Error(`training step: the loss is ${loss}`);
    if (adamw) {
      const update = async () => {
        const c0 = now();
        const clip = await clipGradNorm(named, 1.0);
        clipped = clip.grads;
        gradNorm = clip.totalNorm;
        clipMs = now() - c0;
        adamw.step(clipped);
        await sync(probe);
      };
      if (profile) updatePeak = (await tf.profile(update)).peakBytes;
      else await update();
    }
    t2 = now();
    if (verify && adamw) referenceNorm = await normOneByOne(named);
  } finally {
    tf.dispose([...named.values(), ...(clipped?.values() ?? [])]);
  }
  return {
    totalMs: t2 - t0,
    fwdBwdMs: t1 - t0,
    clipMs,
    optMs: t2 - t1 - clipMs,
    gradNorm,
    referenceNorm,
    fwdBwdPeak,
    updatePeak,
  };
}

/** √(Σ_g Σ_i g_i²), one grad at a time: a check of clipGradNorm's norm, outside the timing. */
async function normOneByOne(grads: ReadonlyMap<string, tf.Tensor>): Promise<number> {
  let sq = 0;
  for (const g of grads.values()) {
    const s = tf.tidy(() => tf.sum(tf.square(g)));
    sq += (await s.data())[0];
    s.dispose();
  }
  return Math.sqrt(sq);
}

/** Forward + logits over the whole batch, no gradients.  → ms */
async function forwardPass(model: CausalLM, batch: TokenBatch): Promise<number> {
  const t0 = now();
  const logits = tf.tidy(() => model.logits(model.forward(batch)));
  try {
    await sync(logits);
  } finally {
    logits.dispose();
  }
  return now() - t0;
}

/** Prefill alone: the prompts through an empty cache and the last position's logits read.  → ms */
async function prefill(model: CausalLM, prompts: number[][]): Promise<number> {
  const cache = new KVCache(prompts.length);
  try {
    const t0 = now();
    const hidden = model.forward(leftPad(prompts, 0), { cache });
    const last = tf.tidy(() => {
      const [B, T, d] = hidden.shape;
      return model.logits(tf.slice(hidden, [0, T - 1, 0], [B, 1, d]));
    });
    hidden.dispose();
    try {
      await last.data();
    } finally {
      last.dispose();
    }
    return now() - t0;
  } finally {
    cache.dispose();
  }
}

/** The wasm backend's heap size: its high-water mark, since a wasm memory never shrinks. */
function wasmHeapBytes(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

const MEMORY_HOW =
  'tf.profile peakBytes: every live tfjs tensor (params, AdamW moments, activations)';

/**
 * Every figure of one config on the current backend (forward, generation, training, memory).
 * Disposes everything it makes and reports tensors left over as an error.
 */
export async function measureModel(c: ModelCase, h: MeasureHooks): Promise<ModelMeasurement> {
  const rows: ModelRow[] = [];
  const notes: string[] = [];
  const push = (r: Figure) => {
    const row: ModelRow = { backend: h.backend, config: c.name, ...r };
    rows.push(row);
    h.onRow?.(row);
    const v = Math.abs(row.value) >= 100 ? row.value.toFixed(0) : row.value.toPrecision(3);
    h.log(`${h.backend.padEnd(7)} ${c.name.padEnd(10)} ${row.figure.padEnd(28)} ${v} ${row.unit}`);
  };
  const note = (text: string) => {
    notes.push(text);
    h.log(`${h.backend.padEnd(7)} ${c.name.padEnd(10)} ${text}`);
  };
  const phase = (name: string) => h.onPhase?.(name);

  const tokens = tokenSource(h.seed ?? 1);
  const V = c.config.vocabSize;
  const { batch: B, seq: T } = c;
  const batch = rightPad(
    Array.from({ length: B }, () => tokens(T, V)),
    0,
  );
  const startTensors = tf.memory().numTensors;

  phase('init');
  const i0 = now();
  const model = CausalLM.init(c.config, { seed: h.seed ?? 1 });
  let adamw: AdamW | undefined;
  try {
    const nParams = [...model.params.values()].reduce((n, v) => n + v.size, 0);
    push({ figure: 'parameters', value: nParams, unit: 'params', initMs: now() - i0 });

    // Forward + logits, no gradients (none where forwardReps is 0: generation alone).
    if (c.forwardReps > 0) {
      phase('forward');
      await forwardPass(model, batch);
      const fwd: number[] = [];
      for (let i = 0; i < c.forwardReps; i++) fwd.push(await forwardPass(model, batch));
      const fwdMs = median(fwd);
      push({
        figure: 'forward',
        value: (B * T) / (fwdMs / 1000),
        unit: 'tokens/s',
        batch: B,
        seq: T,
        ms: fwdMs,
        samples: fwd.length,
        runsMs: fwd,
      });
    }

    // Greedy generation with the KV cache (no stop token: every row runs to newTokens). Under
    // precision bf16 on a copy holding bf16 weights, as a bf16 run's generator does.
    let gen = model;
    if (matmulPrecision() === 'bf16' && (c.generate?.batches.length ?? 0) > 0) {
      gen = CausalLM.init(c.config, { seed: h.seed ?? 1 });
      const fp32Bytes = modelWeightBytes(gen);
      await holdBf16(gen);
      push({
        figure: 'generator weights',
        value: modelWeightBytes(gen),
        unit: 'bytes',
        fp32Bytes,
        how: 'the bf16 generator: bf16 matrices + fp32 norms, biases, positions (fp32Bytes: the same model in fp32)',
      });
    }
    for (const gb of c.generate?.batches ?? []) {
      const g = c.generate!;
      phase(`generate b${gb}`);
      const prompts = Array.from({ length: gb }, () => tokens(g.prompt, V));
      await generate(gen, prompts, { maxNewTokens: 2, temperature: 0 }); // warm-up
      const runs: number[] = [];
      const pre: number[] = [];
      for (let i = 0; i < g.reps; i++) {
        pre.push(await prefill(gen, prompts));
        const t0 = now();
        const out = await generate(gen, prompts, { maxNewTokens: g.newTokens, temperature: 0 });
        runs.push(now() - t0);
        const n = out.responses.reduce((a, r) => a + r.length, 0);
        if (n !== gb * g.newTokens) {
          throw new Error(`generate: ${n} tokens, expected ${gb * g.newTokens}`);
        }
      }
      const ms = median(runs);
      push({
        figure: `generate b${gb}`,
        value: (gb * g.newTokens) / (ms / 1000),
        unit: 'tokens/s',
        batch: gb,
        prompt: g.prompt,
        newTokens: g.newTokens,
        ms,
        samples: runs.length,
        runsMs: runs,
        how: 'batch·newTokens / wall time of generate() (prefill included)',
      });
      push({
        figure: `prefill b${gb}`,
        value: median(pre),
        unit: 'ms',
        batch: gb,
        prompt: g.prompt,
        samples: pre.length,
        how: 'one forward of the prompts through an empty KV cache + last-position logits',
      });
    }
    if (gen !== model) gen.dispose();

    // Training: a warm-up step per variant (profiled for memory), then the variants interleaved.
    const tr = c.train;
    if (tr.skipReason) note(tr.skipReason);
    adamw = tr.optimizer ? new AdamW(model.params, model.specs, { lr: 1e-4 }) : undefined;
    const stateBytes = tf.memory().numBytes;
    const warm = new Map<TrainVariant, StepTiming>();
    const timings = new Map<TrainVariant, StepTiming[]>(tr.variants.map((v) => [v, []]));
    for (const v of tr.variants) {
      phase(`train warm-up (${v})`);
      warm.set(v, await trainStep(model, adamw, batch, v === 'checkpoint', c.memory, true));
    }
    for (let i = 0; i < tr.steps; i++) {
      for (const v of tr.variants) {
        phase(`train (${v})`);
        timings.get(v)!.push(await trainStep(model, adamw, batch, v === 'checkpoint', false));
      }
    }
    for (const [v, t] of warm) {
      const ref = t.referenceNorm;
      if (ref !== undefined && !(Math.abs(t.gradNorm - ref) <= 1e-3 * ref)) {
        note(
          `ERROR: clipGradNorm read a gradient norm of ${t.gradNorm} in the ${v} warm-up step, ` +
            `but the grads' norm is ${ref.toPrecision(6)}: its clipping is wrong on ${h.backend}`,
        );
      }
    }
    const part = tr.optimizer ? 'train' : 'train fwd+bwd only';
    for (const v of tr.variants) {
      const ts = timings.get(v)!;
      if (ts.length === 0) continue;
      const ms = median(ts.map((t) => t.totalMs));
      push({
        figure: `${part}${v === 'checkpoint' ? ' (checkpoint)' : ''}`,
        value: (B * T) / (ms / 1000),
        unit: 'tokens/s',
        batch: B,
        seq: T,
        ms,
        samples: ts.length,
        fwdBwdMs: median(ts.map((t) => t.fwdBwdMs)),
        clipMs: median(ts.map((t) => t.clipMs)),
        optMs: median(ts.map((t) => t.optMs)),
        warmupMs: warm.get(v)!.totalMs,
        how: tr.optimizer
          ? 'batch·seq / (variableGrads of lmLoss + clipGradNorm 1.0 + AdamW.step)'
          : 'batch·seq / variableGrads of lmLoss (no clip, no AdamW)',
      });
    }
    if (tr.trainer) {
      const { steps, offload } = tr.trainer;
      const name = `train (trainer step${offload ? ', AdamW offload' : ''})`;
      phase(name);
      const opt = new AdamW(model.params, model.specs, { lr: 1e-4, offload });
      try {
        const one = async () => {
          const t0 = now();
          const out = await optimizerStep(
            model,
            opt,
            [
              () => {
                const { loss, tokens: n } = lmLoss(model, batch);
                return { loss, weight: n };
              },
            ],
            { lr: 1e-4, maxGradNorm: 1 },
          );
          if (!Number.isFinite(out.loss)) throw new Error(`trainer step: the loss is ${out.loss}`);
          return { ms: now() - t0, loss: out.loss };
        };
        const warmup = await one();
        const runs: { ms: number; loss: number }[] = [];
        for (let i = 0; i < steps; i++) runs.push(await one());
        const ms = median(runs.map((r) => r.ms));
        push({
          figure: name,
          value: (B * T) / (ms / 1000),
          unit: 'tokens/s',
          batch: B,
          seq: T,
          ms,
          samples: runs.length,
          runsMs: runs.map((r) => r.ms),
          warmupMs: warmup.ms,
          losses: [warmup.loss, ...runs.map((r) => r.loss)],
          how: `batch·seq / optimizerStep (fwd+bwd, clip 1.0, AdamW${offload ? ' with its moments on the host' : ''})`,
        });
      } finally {
        opt.dispose();
      }
    }
    if (c.memory) {
      for (const v of tr.variants) {
        const t = warm.get(v)!;
        push({
          figure: `fwd+bwd peak${v === 'checkpoint' ? ' (checkpoint)' : ''}`,
          value: t.fwdBwdPeak!,
          unit: 'bytes',
          aboveStateBytes: t.fwdBwdPeak! - stateBytes,
          paramAndStateBytes: stateBytes,
          how: MEMORY_HOW,
        });
      }
      const plain = warm.get('plain');
      const ckpt = warm.get('checkpoint');
      if (plain && ckpt) {
        const saved = plain.fwdBwdPeak! - ckpt.fwdBwdPeak!;
        const above = plain.fwdBwdPeak! - stateBytes;
        push({
          figure: 'checkpoint saves',
          value: saved,
          unit: 'bytes',
          pctOfPeak: (100 * saved) / plain.fwdBwdPeak!,
          pctOfActivations: (100 * saved) / above,
          how: 'fwd+bwd peak − fwd+bwd peak (checkpoint)',
        });
        push({
          figure: 'checkpoint saves (%)',
          value: (100 * saved) / plain.fwdBwdPeak!,
          unit: '%',
          how: 'of the plain fwd+bwd peak',
        });
      }
      if (plain?.updatePeak !== undefined) {
        push({
          figure: 'train step peak',
          value: Math.max(plain.fwdBwdPeak!, plain.updatePeak),
          unit: 'bytes',
          fwdBwdPeak: plain.fwdBwdPeak,
          clipAndAdamWPeak: plain.updatePeak,
          how: `${MEMORY_HOW}; max of the fwd+bwd and the clip+AdamW halves`,
        });
      }
    }
  } finally {
    adamw?.dispose();
    model.dispose();
  }
  phase('done');
  push({
    figure: 'peak RSS',
    value: process.resourceUsage().maxRSS * 1024,
    unit: 'bytes',
    rssNow: process.memoryUsage().rss,
    how: 'process.resourceUsage().maxRSS: high-water of the whole process',
  });
  const heap = wasmHeapBytes();
  if (heap !== undefined) {
    push({
      figure: 'wasm heap',
      value: heap,
      unit: 'bytes',
      how: 'size of the wasm memory, which only grows: its high-water mark (max 4 GiB)',
    });
  }
  const leaked = tf.memory().numTensors - startTensors;
  if (leaked !== 0) {
    const error = `${leaked} tensors leaked by config ${c.name} on ${h.backend}`;
    note(`ERROR: ${error}`);
    const row: ModelRow = {
      backend: h.backend,
      config: c.name,
      figure: 'leaked tensors',
      value: leaked,
      unit: 'tensors',
      error,
    };
    rows.push(row);
    h.onRow?.(row);
  }
  return { rows, notes };
}
