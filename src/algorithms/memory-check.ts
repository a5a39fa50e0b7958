import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { DpoConfig, LmConfig, RmConfig } from '../config/schema.js';
import { TroupeError } from '../errors.js';
import { WASM_HEAP_MAX, WASM_HEAP_RESERVE } from '../kernels/backends/wasm-heap-limit.js';
import type { ModelConfig } from '../policy/config.js';
import { type MemoryJob, type MemoryPrediction, predictMemory } from '../policy/memory.js';

/*
 * "Will it fit", asked before a run allocates anything: each actor's predicted memory
 * (policy/memory.ts) against what its backend can hold (wasm: the 4 GiB wasm32 heap of its
 * thread) and all of them against the host's available memory. A job that does not fit is
 * refused with the prediction and what would fit instead, each alternative with its own
 * prediction. (Past 300 lines: every algorithm's actors are sized here, against one set of
 * limits, so that the refusal and its alternatives read the same everywhere.)
 */

/** One actor of a run: its name, its configured backend and what it computes. */
export interface ActorMemory {
  readonly actor: string;
  readonly backend: string;
  readonly job: MemoryJob;
  /**
   * Other passes the actor runs on the same weights (method none: an RL policy scoring a whole
   * rollout, a generator sharing the policy's tensors): its peak is the largest of them over its
   * weights and optimizer state.
   */
  readonly phases?: readonly { readonly what: string; readonly job: MemoryJob }[];
  /** Actors colocated in its thread (`colocateWith`), each with its own weights: their peaks add. */
  readonly colocated?: readonly { readonly actor: string; readonly job: MemoryJob }[];
  /** Threads running this same job (data-parallel replicas; default 1): the host holds each. */
  readonly replicas?: number;
}

/**
 * An actor's thread: its job's prediction and the most the thread holds (phases, colocated):
 * `peak` all of it, `backendPeak` its backend's tensors (what a wasm heap must hold: a frozen
 * model's bf16 matrices are host memory, and never reach it in fp32: policy/bf16.ts loadFrozen),
 * `host` the host memory it takes on its backend (a wasm heap never shrinks: its high-water mark
 * beside the bf16 matrices; AdamW moments offloaded to the host included).
 */
export function threadPeak(a: ActorMemory): {
  prediction: MemoryPrediction;
  peak: number;
  backendPeak: number;
  host: number;
} {
  const p = predictMemory(a.job);
  let peak = p.peak;
  let backendPeak = p.backendPeak;
  let bf16 = p.bf16Weights;
  let hostOptimizer = p.hostOptimizer;
  for (const ph of a.phases ?? []) {
    const q = predictMemory(ph.job);
    const extra = p.optimizer + q.peak - q.weights;
    peak = Math.max(peak, p.weights + extra);
    backendPeak = Math.max(backendPeak, p.weights - p.bf16Weights + extra);
  }
  for (const c of a.colocated ?? []) {
    const q = predictMemory(c.job);
    peak += q.peak;
    backendPeak += q.backendPeak;
    bf16 += q.bf16Weights;
    hostOptimizer += q.hostOptimizer;
  }
  const resident = a.backend === 'cpu' ? peak : Math.max(peak, backendPeak + bf16);
  return { prediction: p, peak, backendPeak, host: resident + hostOptimizer };
}

export interface MemoryLimits {
  /** Bytes one wasm actor's tensors may use (wasm32 heap less the kernels' reserve). */
  readonly wasmHeap: number;
  /** Bytes of host memory available to the run. */
  readonly host: number;
}

/** The host's available memory: MemAvailable from /proc/meminfo, else os.freemem(). */
export function hostMemoryAvailable(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return os.freemem();
}

/** The limits of this machine now. */
export function machineLimits(): MemoryLimits {
  return { wasmHeap: WASM_HEAP_MAX - WASM_HEAP_RESERVE, host: hostMemoryAvailable() };
}

export const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** One line of a prediction: its peak and the categories that make it up. */
export function describePrediction(p: MemoryPrediction): string {
  const parts = [
    `weights ${gib(p.weights)}${p.bf16Weights > 0 ? ` (${gib(p.bf16Weights)} bf16)` : ''}`,
    `gradients ${gib(p.gradients)}`,
    `AdamW ${gib(p.optimizer + p.hostOptimizer)}${p.hostOptimizer > 0 ? ' (host)' : ''}`,
    `activations ${gib(p.activations)}`,
    ...(p.kvCache > 0 ? [`KV cache ${gib(p.kvCache)}`] : []),
  ];
  return `peak ${gib(p.peak + p.hostOptimizer)} (${parts.join(', ')})`;
}

/** What would need less memory than `job`, each with its prediction. */
export function alternatives(
  job: MemoryJob,
): { change: string; job: MemoryJob; prediction: MemoryPrediction }[] {
  const out: { change: string; job: MemoryJob; prediction: MemoryPrediction }[] = [];
  const lora = job.lora ?? { rank: 8, targetModules: ['q', 'v'] };
  const add = (change: string, j: MemoryJob) =>
    out.push({ change, job: j, prediction: predictMemory(j) });
  if (job.method === 'full') {
    add(`LoRA (model.lora: rank ${lora.rank} on ${lora.targetModules.join(', ')})`, {
      ...job,
      method: 'lora',
      lora,
    });
    add('QLoRA (model.lora and model.quantize: nf4)', {
      ...job,
      method: 'lora',
      lora,
      quantize: 'nf4',
    });
  } else if (job.method === 'lora' && !job.quantize) {
    add('QLoRA (model.quantize: nf4)', { ...job, quantize: 'nf4' });
  } else if (job.method === 'none' && job.precision !== 'bf16' && !job.quantize) {
    add('bf16 weights (precision: bf16 for this actor)', { ...job, precision: 'bf16' });
  }
  if (job.method !== 'none' && !job.checkpoint) {
    add('gradient checkpointing (model.gradientCheckpointing: true)', { ...job, checkpoint: true });
  }
  if (job.method === 'full' && !job.offloadOptimizer) {
    add('AdamW moments in host memory (optim.offload: true)', { ...job, offloadOptimizer: true });
  }
  if (job.batch > 1) {
    add(`micro-batches of 1 row (train.gradAccum × ${job.batch})`, { ...job, batch: 1 });
  }
  return out;
}

/**
 * Each alternative's peak, over the actor's whole thread (its other passes, colocated actors),
 * against `limit`: the wasm heap (its backend's tensors) or the host's memory.
 */
function fixes(
  actor: ActorMemory,
  limit: number,
  against: 'backendPeak' | 'host',
  backendFix: string | undefined,
): string {
  const lines = alternatives(actor.job).map((a) => {
    const peak = threadPeak({ ...actor, job: a.job })[against];
    return `${a.change}: peak ${gib(peak)}${peak <= limit ? ' (fits)' : ''}`;
  });
  if (backendFix) lines.unshift(backendFix);
  if (actor.job.method !== 'none') {
    lines.push(
      'precision: bf16 does not lower memory here (fp32 master weights, fp32 activations)',
    );
  }
  return lines.map((l) => `  - ${l}`).join('\n');
}

/**
 * Why the run's actors would not fit, as an OUT_OF_MEMORY error (undefined when they fit): an
 * actor on wasm (or `auto`, which picks wasm on a CPU machine) past its heap, or all of them past
 * the host's memory.
 */
export function memoryProblem(
  actors: readonly ActorMemory[],
  limits: MemoryLimits,
): TroupeError | undefined {
  const predicted = actors.map((a) => ({ ...a, ...threadPeak(a) }));
  for (const a of predicted) {
    if (a.backend !== 'wasm' && a.backend !== 'auto') continue;
    const p = a.prediction;
    if (a.backendPeak <= limits.wasmHeap) continue;
    const host = threadPeak({ ...a, backend: 'cpu' }).host <= limits.host;
    const field = `actors.${a.actor}.backend`;
    return new TroupeError(
      'OUT_OF_MEMORY',
      `Actor '${a.actor}' will not fit: ${describeJob(a.job)} needs ${describePrediction(p)}` +
        `${threadExtras(a, a.peak)}, ` +
        `more than the ${gib(limits.wasmHeap)} a wasm actor's heap holds (wasm32, backend ` +
        `'${a.backend}'). Nothing was allocated. What would fit:\n` +
        fixes(
          a,
          limits.wasmHeap,
          'backendPeak',
          `the cpu backend (runtime.backend: cpu, or ${field}: cpu): host memory, native kernels` +
            (host
              ? ` (${gib(limits.host)} available: fits)`
              : ` (${gib(limits.host)} available: does not fit either)`),
        ),
      {
        details: {
          actor: a.actor,
          backend: a.backend,
          predicted: p,
          threadPeakBytes: a.peak,
          backendPeakBytes: a.backendPeak,
          limitBytes: limits.wasmHeap,
        },
      },
    );
  }
  const each = (a: (typeof predicted)[number]) => a.host * (a.replicas ?? 1);
  const total = predicted.reduce((s, a) => s + each(a), 0);
  if (total > limits.host) {
    const biggest = predicted.reduce((a, b) => (b.peak > a.peak ? b : a));
    return new TroupeError(
      'OUT_OF_MEMORY',
      `This run will not fit in host memory: its actors need ${gib(total)} (` +
        predicted
          .map(
            (a) => `${a.actor}${(a.replicas ?? 1) > 1 ? ` × ${a.replicas}` : ''} ${gib(each(a))}`,
          )
          .join(', ') +
        `), ${gib(limits.host)} is available. Nothing was allocated. The largest, '${biggest.actor}', ` +
        `${describeJob(biggest.job)}: ${describePrediction(biggest.prediction)}. What would need less:\n` +
        fixes(biggest, limits.host, 'host', undefined),
      { details: { totalBytes: total, limitBytes: limits.host } },
    );
  }
  return undefined;
}

/** What a thread adds to its job's own peak: its other passes and colocated actors. */
function threadExtras(a: ActorMemory, peak: number): string {
  if (!a.phases?.length && !a.colocated?.length) return '';
  const parts = [
    ...(a.phases ?? []).map((ph) => ph.what),
    ...(a.colocated ?? []).map(
      (c) => `${c.actor} (colocated) ${describePrediction(predictMemory(c.job))}`,
    ),
  ];
  return `; with ${parts.join('; ')}, its thread peaks at ${gib(peak)}`;
}

function describeJob(j: MemoryJob): string {
  const c: ModelConfig = j.config;
  const what =
    j.method === 'full'
      ? 'a full fine-tune'
      : j.method === 'lora'
        ? `${j.quantize ? 'QLoRA' : 'LoRA'} rank ${j.lora?.rank}`
        : j.generation
          ? 'generation'
          : 'a forward';
  const params = `${(predictMemory(j).params / 1e6).toFixed(1)} M parameters, ${c.layers} layers, d ${c.hidden}`;
  const bf16 = j.precision === 'bf16' && (j.method === 'none' || (j.frozenCopies ?? 0) > 0);
  return `${what} of a ${params} at ${j.batch}×${j.seq} tokens${j.checkpoint ? ', checkpointed' : ''}${bf16 ? ', frozen weights in bf16' : ''}`;
}

/** Throw memoryProblem's error, if any (the trainers call this before starting an actor). */
export function assertFits(actors: readonly ActorMemory[], limits = machineLimits()): void {
  const problem = memoryProblem(actors, limits);
  if (problem) throw problem;
}

/** The micro-batch one replica of the main learner computes at a time. */
function microBatch(c: {
  train: { batchSize: number; gradAccum: number };
  runtime: { replicas: number };
}): number {
  return Math.max(1, Math.floor(c.train.batchSize / (c.runtime.replicas * c.train.gradAccum)));
}

/** The policy actor of a pretraining or SFT run. */
export function lmActors(c: LmConfig, model: ModelConfig): ActorMemory[] {
  const seq = c.algorithm === 'pretrain' ? c.data.blockSize : c.data.maxLength;
  return [
    {
      actor: 'policy',
      backend: c.actors?.policy?.backend ?? c.runtime.backend,
      job: {
        config: model,
        method: c.model.lora ? 'lora' : 'full',
        ...(c.model.lora ? { lora: c.model.lora } : {}),
        ...(c.model.quantize ? { quantize: c.model.quantize } : {}),
        batch: microBatch(c),
        seq,
        checkpoint: c.model.gradientCheckpointing,
        offloadOptimizer: c.optim.offload,
      },
    },
  ];
}

/**
 * The actors of a reward-model or DPO run: the learner (its micro-batch of pairs is two rows a
 * pair, chosen and rejected; a reward model adds its score head) and DPO's frozen reference (a
 * forward of the same rows). A reference colocated with the learner shares its thread: its
 * weights then count towards that thread's heap, so the two are checked as one job there.
 */
export function preferenceActors(c: RmConfig | DpoConfig, model: ModelConfig): ActorMemory[] {
  const learner = c.algorithm;
  const batch = 2 * microBatch(c);
  const seq = c.data.maxLength;
  const backendOf = (name: string) => c.actors?.[name]?.backend ?? c.runtime.backend;
  const precisionOf = (name: string) => c.actors?.[name]?.precision ?? c.runtime.precision;
  const train: MemoryJob = {
    config: model,
    method: c.model.lora ? 'lora' : 'full',
    ...(c.model.lora ? { lora: c.model.lora } : {}),
    ...(c.algorithm === 'rm' ? { heads: ['score' as const] } : {}),
    batch,
    seq,
    checkpoint: c.model.gradientCheckpointing,
    offloadOptimizer: c.optim.offload,
  };
  const out: ActorMemory[] = [{ actor: learner, backend: backendOf(learner), job: train }];
  if (c.algorithm !== 'dpo') return out;
  // a frozen reference holds bf16 matrices under its thread's precision bf16 (policy/bf16.ts)
  const reference: MemoryJob = {
    config: model,
    method: 'none',
    batch,
    seq,
    precision: precisionOf('reference'),
  };
  if (c.actors?.reference?.colocateWith === learner) {
    // one thread (the learner's precision): the learner's step beside a frozen copy
    const job: MemoryJob = { ...train, frozenCopies: 1, precision: precisionOf(learner) };
    return [{ actor: learner, backend: backendOf(learner), job }];
  }
  out.push({ actor: 'reference', backend: backendOf('reference'), job: reference });
  return out;
}
