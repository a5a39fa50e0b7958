import { TroupeError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { type HeadName, headSpecs, paramSpecs } from './params.js';

/**
 * "Will it fit": the memory of a job, predicted from its model config before anything is
 * allocated. Weights, gradients and optimizer state are exact byte counts of the tensors Troupe
 * creates (float32, the shapes of params.ts and the LoRA adapters; a frozen model under precision
 * bf16 its matrices' bf16 panels, bf16Matrices, checked against a held model's bytes in
 * test/policy/memory-bf16.test.ts). Activations count the
 * float32 tensors a training step's backward keeps, per token and layer, read off the block's
 * tape (block.ts, layers.ts; under the lean backward of kernels/custom/lean-backprop.ts), plus
 * the LM head's and one block's transients; checked against the wasm heap's measured peak on
 * tiny models (test/policy/memory.test.ts) and against peak RSS on 0.5 B models
 * (bench/suites/memory.ts, docs/memory.md).
 *
 * Sums are upper bounds by construction: the prediction adds every category's most, while a
 * step's backward frees activations as gradients arrive.
 *
 * (Past 300 lines: one prediction, category by category; each count reads the others' terms,
 * and the tests check them against one measured peak.)
 */

/** What trains: every weight, LoRA adapters only, or nothing (forward, scoring, generation). */
export type TrainMethod = 'full' | 'lora' | 'none';

export interface MemoryJob {
  readonly config: ModelConfig;
  readonly method: TrainMethod;
  /** LoRA rank and target projections (Troupe names q, k, v, o, gate, up, down; or c_attn). */
  readonly lora?: { readonly rank: number; readonly targetModules: readonly string[] };
  /** Sequences per micro-batch and their length in tokens. */
  readonly batch: number;
  readonly seq: number;
  /** Gradient checkpointing: each block keeps only its input; one block is recomputed at a time. */
  readonly checkpoint?: boolean;
  /** AdamW's moments in host memory (optim.offload) rather than on the backend. */
  readonly offloadOptimizer?: boolean;
  /** Generation: rows and total tokens (prompt + new) of the KV cache. */
  readonly generation?: { readonly batch: number; readonly length: number };
  /** Heads the actor adds (a critic's value head, a reward model's score). */
  readonly heads?: readonly HeadName[];
  /** The frozen base stored as NF4 (QLoRA): block projections at 4 bits plus scales. */
  readonly quantize?: 'nf4';
  /** More copies of the model's weights in the same thread (a colocated reference), frozen. */
  readonly frozenCopies?: number;
  /**
   * The thread's matrix-product precision (default fp32). Under bf16 a frozen model (a forward
   * job, method none, without adapters or NF4, and every frozen copy) holds its block
   * projections, embedding and untied LM head as bf16 (policy/bf16.ts loadFrozen, holdBf16); a
   * trained model keeps fp32 masters.
   */
  readonly precision?: 'fp32' | 'bf16';
}

/** Bytes by category. `optimizer` is on the backend unless offloaded (then `hostOptimizer`). */
export interface MemoryPrediction {
  readonly params: number;
  readonly trainableParams: number;
  readonly weights: number;
  /**
   * Of `weights`, the bf16 matrices of frozen models under precision bf16: panels of 32 columns
   * in host ArrayBuffers, outside the backend's tensors (not in a wasm heap). 0 otherwise.
   */
  readonly bf16Weights: number;
  readonly gradients: number;
  readonly optimizer: number;
  readonly hostOptimizer: number;
  readonly activations: number;
  readonly kvCache: number;
  /**
   * The most a training step's tensors hold at once: weights and optimizer state, plus the larger
   * of the backward's peak (activations kept and transient, with the gradients that exist beside
   * them) and the update's (every gradient and one parameter's new value).
   */
  readonly peak: number;
  /**
   * The most the backend's tensors (a wasm heap) hold at once: `peak` less the bf16 matrices.
   * A frozen model held as bf16 is built that way (policy/bf16.ts loadFrozen): each matrix is
   * rounded on the host as it is read or drawn, and only its other parameters reach the backend,
   * so its load never holds its matrices in fp32 there. (A frozen model from a LoRA checkpoint
   * is the exception: the matrices its adapters change are merged in fp32 first, then rounded;
   * the job does not say so.)
   */
  readonly backendPeak: number;
  /** What the backend's tensors need at the step's peak (the wasm heap's share). */
  readonly backendTotal: number;
  /** Everything, host included. */
  readonly total: number;
}

const F32 = 4;
const BF16 = 2;
/** Columns per panel of the bf16 matrices (kernels/custom/native-w16-linear.ts W16_PANEL). */
const W16_PANEL = 32;
/** The parameters holdBf16 keeps as bf16 (policy/bf16.ts bf16Names: DECODE_PROJECTIONS, embed, head). */
const BF16_HELD =
  /^(layers\.\d+\.(attn\.[qkvo]|mlp\.(gate|up|down))\.weight|embed\.weight|lm_head\.weight)$/;

/**
 * The matrices a frozen model holds as bf16 under precision bf16: their weights and the bytes of
 * their panels. Each [in, out] (the embedding [V, d] as Eᵀ [d, V]) is in · ⌈out/32⌉ · 32 bf16
 * values, the last panel's columns past `out` zero (w16Buffer); that count is a multiple of 32,
 * so the buffer's rounding to whole float32s adds nothing.
 */
export function bf16Matrices(c: ModelConfig): { params: number; bytes: number } {
  let params = 0;
  let bytes = 0;
  for (const p of paramSpecs(c)) {
    if (!BF16_HELD.test(p.name)) continue;
    const [inDim, outDim] = p.name === 'embed.weight' ? [p.shape[1], p.shape[0]] : p.shape;
    params += inDim * outDim;
    bytes += inDim * Math.ceil(outDim / W16_PANEL) * W16_PANEL * BF16;
  }
  return { params, bytes };
}

/** Block projections by Troupe name: [in, out] of each. */
function projections(c: ModelConfig): Record<string, [number, number]> {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  return {
    q: [c.hidden, q],
    k: [c.hidden, kv],
    v: [c.hidden, kv],
    o: [q, c.hidden],
    ...(c.mlp === 'gelu' ? {} : { gate: [c.hidden, c.intermediate] }),
    up: [c.hidden, c.intermediate],
    down: [c.intermediate, c.hidden],
  };
}

const LORA_NAMES: Record<string, string[]> = {
  q_proj: ['q'],
  k_proj: ['k'],
  v_proj: ['v'],
  o_proj: ['o'],
  gate_proj: ['gate'],
  up_proj: ['up'],
  down_proj: ['down'],
  c_fc: ['up'],
  c_proj: ['o', 'down'],
};

/**
 * The adapters a LoRA config adds per layer, as [in, out] of each site: fused c_attn / qkv_proj
 * and gate_up_proj sites are one adapter over their parts (A shared), as lora.ts builds them.
 */
export function loraSiteShapes(
  c: ModelConfig,
  lora: NonNullable<MemoryJob['lora']>,
): [number, number][] {
  const proj = projections(c);
  const sites: [number, number][] = [];
  const seen = new Set<string>();
  for (const name of lora.targetModules) {
    const fused =
      name === 'c_attn' || name === 'qkv_proj' || name === 'qkv'
        ? ['q', 'k', 'v']
        : name === 'gate_up_proj' || name === 'gate_up'
          ? ['gate', 'up']
          : undefined;
    if (fused) {
      if (seen.has(name)) continue;
      seen.add(name);
      sites.push([c.hidden, fused.reduce((s, p) => s + proj[p][1], 0)]);
      continue;
    }
    for (const p of LORA_NAMES[name] ?? [name]) {
      if (!proj[p]) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `memory: LoRA target '${name}' is not a projection of this model (${Object.keys(proj).join(', ')})`,
        );
      }
      if (!seen.has(p)) sites.push(proj[p]);
      seen.add(p);
    }
  }
  return sites;
}

/** Parameters of the model and its heads. */
export function parameterCount(c: ModelConfig, heads: readonly HeadName[] = []): number {
  const specs = [...paramSpecs(c), ...heads.flatMap((h) => headSpecs(c, h))];
  return specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Bytes of the NF4 base's block projections: 4-bit codes, 8-bit absmax per 64, fp32 per 256 of those. */
function nf4Bytes(n: number): number {
  const blocks = Math.ceil(n / 64);
  return n / 2 + blocks + Math.ceil(blocks / 256) * F32;
}

/**
 * Floats a training step keeps per token and layer: the tensors each op of block() saves for
 * its backward (each buffer once), read off its tape.
 *   per block: 6d (block input, both norm outputs, the attention output projection, the
 *   residual sum, the MLP output) + q path 4q (projection, heads transposed, attention output
 *   and its transpose) + k 2kv + v 2kv + probabilities H·S + MLP 4I (gated: gate, act, up,
 *   product) or 2I (GELU); RoPE adds 5 per q and k channel (the rotated halves, both
 *   products, the sum), q/k norms 1 per channel, sandwich norms 2d, LoRA 3·out + r per site.
 */
export function blockFloatsPerToken(job: MemoryJob, keys: number): number {
  const c = job.config;
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  let f =
    6 * c.hidden + 4 * q + 4 * kv + c.heads * keys + (c.mlp === 'gelu' ? 2 : 4) * c.intermediate;
  if (c.positions === 'rope') f += 5 * (q + kv);
  if (c.qkNorm) f += q + kv;
  if (c.sandwichNorms) f += 4 * c.hidden;
  if (c.dropout.attention > 0) f += c.heads * keys;
  if (c.dropout.residual > 0) f += 2 * c.hidden;
  if (job.method === 'lora' && job.lora) {
    for (const [, out] of loraSiteShapes(c, job.lora)) f += 3 * out + job.lora.rank;
  }
  return f;
}

/** lm-head.ts's chunking: logits per forward chunk or backward block, and when it keeps them. */
const CHUNK_LOGITS = 2 ** 23;
const KEEP_LOGITS = 2 ** 25;

/**
 * Floats the LM head holds at once beyond its input rows, as lm-head.ts computes it: up to 2²⁵
 * logits it keeps z and onehot − softmax [N, V] (a forward alone, with no tape: z, the second
 * computed only under a tape); past that the forward goes
 * max(128, 2²³/V) rows at a time (at Qwen's 151936 words 128 rows: 19.4 M floats, more than the
 * 2²³ the name suggests) and the backward max(4096, 2²³/N) vocabulary columns at a time (the
 * block's logits and their gradient).
 */
export function headTransientFloats(N: number, V: number, backward: boolean): number {
  if (N * V <= KEEP_LOGITS) return (backward ? 2 : 1) * N * V;
  const rows = Math.min(N, Math.max(128, Math.floor(CHUNK_LOGITS / V)));
  const cols = Math.min(V, Math.max(4096, Math.floor(CHUNK_LOGITS / N)));
  return Math.max(rows * V, backward ? 2 * N * cols : 0);
}

/** Whether a job's model is held as bf16: a forward under bf16, no adapters, no NF4 (loadFrozen). */
function holdsBf16(job: MemoryJob): boolean {
  return job.precision === 'bf16' && job.method === 'none' && !job.quantize && !job.lora;
}

/**
 * Logits a bf16-held head holds at once in a forward (bf16-weights.ts bf16HeadLogProbs): chunks
 * of max(32, 2²³/V) rows, each chunk's logits freed before the next.
 */
export function bf16HeadFloats(N: number, V: number): number {
  return Math.min(N, Math.max(32, Math.floor(CHUNK_LOGITS / V))) * V;
}

/**
 * Activation bytes of a training step (or, with method none, of a forward): `kept` for the
 * backward over all layers, `transient` the most one block and the head hold at a time.
 */
function activationBytes(job: MemoryJob): { kept: number; transient: number } {
  const c = job.config;
  const N = job.batch * job.seq;
  const S = job.seq;
  const perBlock = blockFloatsPerToken(job, S) * N;
  // The embedding output, final norm and the head's input rows, and the head's logits.
  const V = c.vocabSize;
  const rows = 4 * N * c.hidden;
  // One block's attention scores before the softmax.
  const scores = c.heads * S * N;
  if (job.method === 'none') {
    const head = holdsBf16(job) ? bf16HeadFloats(N, V) : headTransientFloats(N, V, false);
    return { kept: 0, transient: (perBlock + scores + rows + head) * F32 };
  }
  const head = rows + headTransientFloats(N, V, true);
  const kept = (job.checkpoint ? c.hidden * N : perBlock) * c.layers;
  // A checkpointed block is recomputed in the backward (its activations again) and
  // differentiated with respect to x and its trainable parameters only (checkpointing.ts: a
  // frozen base's weights are read from the model, and get no gradient).
  const recompute = job.checkpoint ? perBlock : 0;
  const transient = recompute + scores + head;
  return { kept: kept * F32, transient: transient * F32 };
}

/** The memory a job needs, by category. */
export function predictMemory(job: MemoryJob): MemoryPrediction {
  const c = job.config;
  if (!(job.batch >= 1 && job.seq >= 1)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `memory: batch and seq must be ≥ 1, got ${job.batch}, ${job.seq}`,
    );
  }
  const fc = job.frozenCopies ?? 0;
  if (!(Number.isInteger(fc) && fc >= 0)) {
    throw new TroupeError('BAD_ARGUMENT', `memory: frozenCopies must be an integer ≥ 0, got ${fc}`);
  }
  if (job.method === 'lora' && !job.lora) {
    throw new TroupeError('BAD_ARGUMENT', "memory: method 'lora' needs the lora rank and targets");
  }
  if (job.precision !== undefined && job.precision !== 'fp32' && job.precision !== 'bf16') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `memory: precision must be 'fp32' or 'bf16', got '${String(job.precision)}'`,
    );
  }
  const params = parameterCount(c, job.heads);
  const perLayer = Object.values(projections(c)).reduce((s, [i, o]) => s + i * o, 0);
  // Under bf16 every frozen model holds its matrices as bf16 (the rest stays fp32): the job's own
  // when it only runs forward, and each frozen copy beside it.
  const bf16 = job.precision === 'bf16';
  const m16 = bf16 ? bf16Matrices(c) : { params: 0, bytes: 0 };
  const held = holdsBf16(job);
  const frozenBytes = (n: number) => (bf16 ? (n - m16.params) * F32 + m16.bytes : n * F32);
  const copies = fc * frozenBytes(parameterCount(c));
  const bf16Weights = (fc + (held ? 1 : 0)) * m16.bytes;
  const weights =
    copies +
    (job.quantize === 'nf4'
      ? (params - perLayer * c.layers) * F32 + nf4Bytes(perLayer) * c.layers
      : held
        ? frozenBytes(params)
        : params * F32);
  const adapters =
    job.method === 'lora' && job.lora
      ? loraSiteShapes(c, job.lora).reduce((s, [i, o]) => s + (i + o) * job.lora!.rank, 0) *
        c.layers
      : 0;
  const trainable = job.method === 'full' ? params : adapters;
  const gradients = trainable * F32;
  const moments = 2 * trainable * F32;
  const optimizer = job.offloadOptimizer ? 0 : moments;
  const hostOptimizer = job.offloadOptimizer ? moments : 0;
  const { kept, transient } = activationBytes(job);
  const activations = kept + transient;
  const g = job.generation;
  const kvCache = g ? 2 * c.layers * g.batch * c.kvHeads * c.headDim * g.length * F32 : 0;
  const backendTotal =
    weights - bf16Weights + adapters * F32 + gradients + optimizer + activations + kvCache;
  // The backward frees a layer's activations as that layer's gradients arrive: the sum of the
  // two peaks at either end. The gradients of the embedding and head (outside the blocks) come
  // first; a frozen head and embedding (LoRA, QLoRA) get none (lm-head.ts computes no [V, d]
  // gradient for a frozen weight, and the backward never reaches a frozen embedding).
  const blockGrads = job.method === 'full' ? perLayer * c.layers * F32 : gradients;
  const outside = job.method === 'full' ? gradients - blockGrads : 0;
  const largest = Math.max(...paramSpecs(c).map((p) => p.shape.reduce((a, b) => a * b, 1)));
  // Tied (full fine-tune): the embedding's gradient arrives last, a dense [V, d] of its own, and
  // is summed with the head's: three [V, d] at once beside every block gradient (measured: 3.1×
  // the [V, d] above the weights on a 32768 × 256 model, memory-terms.test.ts).
  const tiedSum = job.method === 'full' && c.tieEmbeddings ? 2 * c.vocabSize * c.hidden * F32 : 0;
  const stepPeak =
    job.method === 'none'
      ? activations
      : Math.max(Math.max(kept, blockGrads) + transient + outside, blockGrads + outside + tiedSum);
  const updatePeak =
    job.method === 'none' ? 0 : gradients + (job.method === 'full' ? largest * F32 : 0);
  const peak = weights + adapters * F32 + optimizer + kvCache + Math.max(stepPeak, updatePeak);
  return {
    peak,
    backendPeak: peak - bf16Weights,
    params,
    trainableParams: trainable,
    weights: weights + adapters * F32,
    bf16Weights,
    gradients,
    optimizer,
    hostOptimizer,
    activations,
    kvCache,
    backendTotal,
    total: backendTotal + hostOptimizer + bf16Weights,
  };
}
