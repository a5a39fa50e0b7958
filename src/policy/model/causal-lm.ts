import type { TokenBatch } from '../../data/batching/collate.js';
import { TroupeError } from '../../errors.js';
import {
  DECODE_PARAMS,
  nativeDecodeAvailable,
  nativeDecodeStep,
  TensorViews,
} from '../../kernels/custom/native-decode.js';
import { FUSED } from '../../kernels/custom/native-fused.js';
import { w16Linear } from '../../kernels/custom/native-w16-linear.js';
import { logProbsFromLogits } from '../../kernels/numerics/index.js';
import { bf16Product } from '../../kernels/precision.js';
import { RandomStream, type StreamKey } from '../../kernels/random.js';
import * as tf from '../../kernels/tf.js';
import type { Tensor32 } from '../checkpoint/index.js';
import { type DropoutRates, layerAttention, type ModelConfig, validateConfig } from '../config.js';
import { headLogProbs } from '../lm-head.js';
import { type HeadName, headSpecs, type ParamSpec, paramSpecs } from '../params.js';
import { attentionBias, lastTokenIndex, positionIds } from './batch.js';
import { type Bf16Weights, bf16HeadLogProbs } from './bf16-weights.js';
import {
  type BlockContext,
  block,
  canDecodeNatively,
  type DropoutMasks,
  nativeBlock,
  nativeDecodeSupports,
  norm,
  type Projection,
  plainProjection,
} from './block.js';
import { checkpointedBlock } from './checkpointing.js';
import type { KVCache } from './kv-cache.js';
import { forwardRope, positionLimit } from './rope.js';

const EMPTY = new Float32Array(0);

export type { Tensor32 };

export interface ForwardOptions {
  /** Attend to these cached keys/values and append the new ones to it. */
  readonly cache?: KVCache;
  /** Recompute each block in backward instead of keeping its activations. */
  readonly checkpoint?: boolean;
}

let nextModelId = 0;

/**
 * A decoder-only transformer (GPT-2 or Llama/Qwen2 family, per its config) with its parameters
 * as tfjs variables, an LM head, and optional value and score heads.
 *
 * (Past 300 lines: one class, the model. Its parameters, the forward (plain, checkpointed, native
 * decode with the KV cache), the LM head's logits and chunked log-probs and the value and score
 * heads all read the same parameter map; the blocks, RoPE, cache and head are their own files.)
 */
export class CausalLM {
  /** The model's config (its dropout rates can be changed for training with `setDropout`). */
  config: ModelConfig;
  /** Every parameter by Troupe name (see params.ts), LM and heads. */
  readonly params: Map<string, tf.Variable>;
  readonly specs: Map<string, ParamSpec>;
  /** How projections are computed; LoRA replaces it. */
  project: Projection = plainProjection;
  /**
   * The matrices a frozen model holds as bf16 instead of parameters (precision bf16:
   * src/policy/bf16.ts holdBf16), read by the projections, the embedding and the LM head.
   */
  weights16: Bf16Weights | undefined;
  /**
   * Key of the current training step's dropout draws (the config's `dropout` rates); undefined =
   * no dropout (evaluation, generation, scoring). Set by the trainer around a step.
   */
  dropoutKey: StreamKey | undefined;
  private readonly id = nextModelId++;
  /** decodeStep's views of the parameters it reads (taken once, re-taken when they go stale). */
  private stepViews: { key: string; views: TensorViews } | undefined;

  private constructor(config: ModelConfig, values: Map<string, tf.Tensor>, specs: ParamSpec[]) {
    this.config = config;
    this.specs = new Map(specs.map((s) => [s.name, s]));
    this.params = new Map();
    for (const s of specs) {
      // tfjs variable names are global to the thread: prefix them so models can coexist.
      this.params.set(s.name, tf.variable(values.get(s.name)!, true, `m${this.id}/${s.name}`));
    }
  }

  /**
   * Random initialisation, deterministic in `seed`: weights ~ N(0, 0.02²) (residual output
   * projections scaled by 1/√(2L), as GPT-2), norm gains 1, biases 0; heads ~ N(0, 1/(d+1)).
   */
  static init(config: ModelConfig, opts: { seed: number; heads?: readonly HeadName[] }): CausalLM {
    const specs = [
      ...paramSpecs(config),
      ...(opts.heads ?? []).flatMap((h) => headSpecs(config, h)),
    ];
    const values = new Map(specs.map((s) => [s.name, initValue(config, s, opts.seed)]));
    try {
      return new CausalLM(config, values, specs);
    } finally {
      tf.dispose([...values.values()]);
    }
  }

  /**
   * A model from plain parameter data (a loaded checkpoint); every tensor must be present, except
   * that a reward model (a `score` head) may come without an LM head, as transformers'
   * `…ForSequenceClassification` saves it: it then scores and has values, but has no logits.
   * `absent`: parameters the model is built without (an NF4 base's projections, attached next:
   * src/policy/quantize).
   */
  static fromState(
    config: ModelConfig,
    state: Map<string, Tensor32>,
    heads: readonly HeadName[] = [],
    opts: { readonly absent?: ReadonlySet<string> } = {},
  ): CausalLM {
    const headless =
      !config.tieEmbeddings && !state.has('lm_head.weight') && heads.includes('score');
    const specs = [
      ...paramSpecs(config).filter(
        (s) => !(headless && s.name === 'lm_head.weight') && !opts.absent?.has(s.name),
      ),
      ...heads.flatMap((h) => headSpecs(config, h)),
    ];
    const values = new Map<string, tf.Tensor>();
    try {
      for (const s of specs) {
        const t = state.get(s.name);
        if (!t)
          throw new TroupeError(
            'BAD_ARGUMENT',
            `Model state has no tensor '${s.name}' (shape [${s.shape}])`,
          );
        if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
          throw new TroupeError(
            'SHAPE_MISMATCH',
            `Model state tensor '${s.name}' has shape [${t.shape}], the config needs [${s.shape}]`,
          );
        }
        values.set(s.name, tf.tensor(t.data, [...s.shape], 'float32'));
      }
      return new CausalLM(config, values, specs);
    } finally {
      tf.dispose([...values.values()]);
    }
  }

  /**
   * The dropout rates training applies (and a saved config.json records): the checkpoint's own
   * by default; `NO_DROPOUT` turns them off, as TRL's `disable_dropout`.
   */
  setDropout(rates: DropoutRates): void {
    this.config = validateConfig({ ...this.config, dropout: rates });
  }

  /** Whether the model has an LM head (a sequence classifier saved by transformers has none). */
  get hasLmHead(): boolean {
    return (
      this.config.tieEmbeddings ||
      this.params.has('lm_head.weight') ||
      this.weights16?.get('lm_head.weight') !== undefined
    );
  }

  /** Every parameter's data (read with `await data()`, so it works on every backend). */
  async stateDict(): Promise<Map<string, Tensor32>> {
    const out = new Map<string, Tensor32>();
    for (const [name, v] of this.params) {
      out.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    }
    for (const name of this.weights16?.matrices.keys() ?? []) {
      out.set(name, this.weights16!.widen(name));
    }
    return out;
  }

  /** Add a parameter (an adapter or a head) with its initial value (copied). */
  addParam(spec: ParamSpec, value: tf.Tensor): tf.Variable {
    if (this.params.has(spec.name)) {
      throw new TroupeError('BAD_ARGUMENT', `Model already has a parameter '${spec.name}'`);
    }
    const v = tf.variable(value, true, `m${this.id}/${spec.name}`);
    this.params.set(spec.name, v);
    this.specs.set(spec.name, spec);
    return v;
  }

  /** Look a parameter up by Troupe name. */
  param(name: string): tf.Variable | undefined {
    return this.params.get(name);
  }

  /**
   * Hidden states after the final norm.  batch: B rows of T tokens  →  [B, T, d]
   * With a cache, the rows continue the cached ones and the new keys/values are appended.
   */
  forward(batch: TokenBatch, opts: ForwardOptions = {}): tf.Tensor {
    const c = this.config;
    const { batch: B, length: T } = batch;
    const cache = opts.cache;
    if (cache && cache.batch !== B) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `forward: batch of ${B} rows, but the cache holds ${cache.batch}`,
      );
    }
    const P = cache?.length ?? 0;
    const S = P + T;
    const positions = positionIds(batch, cache?.seen);
    const maxPos = positions.reduce((m, p) => Math.max(m, p), 0);
    const limit = positionLimit(c);
    if (maxPos >= limit) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `forward: position ${maxPos} is beyond the model's maxPositions (${limit}${limit === c.maxPositions ? '' : ', extended by dynamic RoPE'}); shorten the sequence`,
      );
    }
    const keyMask = cache ? cache.keyMaskWith(batch.mask, T) : batch.mask;
    const get = (n: string) => this.params.get(n);
    const newKeys: tf.Tensor[] = [];
    const newValues: tf.Tensor[] = [];
    let host = false;
    const dropout = this.dropoutMasks();
    const hidden = tf.tidy(() => {
      const ids = tf.tensor2d(batch.ids, [B, T], 'int32');
      let x: tf.Tensor = this.weights16?.get('embed.weight')
        ? this.weights16.embed(batch.ids, [B, T])
        : tf.gather(need(this, 'embed.weight'), ids); // (B, T, d)
      if (c.embedScale !== 1) x = tf.mul(x, c.embedScale); // Gemma: √d
      if (c.positions === 'learned') {
        const pos = tf.tensor2d(positions, [B, T], 'int32');
        x = tf.add(x, tf.gather(need(this, 'pos_embed.weight'), pos));
      }
      if (dropout && c.dropout.embedding > 0)
        x = tf.mul(x, dropout('embed', [B, T, c.hidden], c.dropout.embedding));
      // One bias and one RoPE table per layer kind the model has (full, sliding window).
      const kinds = new Set(Array.from({ length: c.layers }, (_, l) => layerAttention(c, l)));
      const biasOf = (window?: number) =>
        tf.tensor(attentionBias(keyMask, B, T, S, window), [B, 1, 1, T, S]);
      const biases = {
        full: kinds.has('full') ? biasOf() : undefined,
        sliding: kinds.has('sliding') ? biasOf(c.slidingWindow) : undefined,
      };
      const ropes = forwardRope(c, positions, B, T);
      const contexts = Array.from({ length: c.layers }, (_, l): BlockContext => {
        const kind = layerAttention(c, l);
        return {
          config: c,
          bias: biases[kind]!,
          rope: ropes[kind],
          project: this.project,
          dropout,
          weights16: this.weights16,
        };
      });
      // A cache's first forward picks its store: host buffers the native decoder block writes in
      // place where that kernel runs, tensors (concatenated per step) elsewhere.
      const native = cache !== undefined && canDecodeNatively(x, contexts[0]);
      host = cache !== undefined && (cache.kind ?? (native ? 'host' : 'tensors')) === 'host';
      if (host && !native) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          'forward: this KV cache keeps host buffers, which only the native decoder block reads ' +
            '(wasm or cpu with the native addon, plain projections: no LoRA, and a model the ' +
            'kernel implements); use a new cache',
        );
      }
      // Each block in its own tidy: what its backward needs is kept by the tape (saved
      // tensors), the rest (attention scores, RoPE halves, the MLP's pre-activations) is freed
      // when the block ends instead of when the whole forward does. The block's input goes too,
      // once the next block has it. Measured (wasm heap bytes, each buffer once; 4-layer
      // Llama shape, d 256): a forward without gradients fell from 34–48 to 9–13 floats per
      // token·layer·d (docs/memory.md).
      for (let l = 0; l < c.layers; l++) {
        const ctx = contexts[l];
        const input = x;
        if (host) {
          x = nativeBlock(x, l, get, ctx, cache!.hostLayer(l, c.kvHeads, c.headDim, T), P);
        } else if (opts.checkpoint && !cache) {
          x = tf.tidy(() => checkpointedBlock(input, l, this.blockParamNames(l), get, ctx));
        } else {
          const out: { h: tf.Tensor; k?: tf.Tensor; v?: tf.Tensor } = tf.tidy(() => {
            const o = block(input, l, get, ctx, cache?.layerRows(l));
            return cache ? o : { h: o.h };
          });
          x = out.h;
          if (cache) {
            newKeys.push(tf.keep(out.k!));
            newValues.push(tf.keep(out.v!));
          }
        }
        if (l > 0) input.dispose();
      }
      return norm(x, 'final_norm', get, c);
    });
    if (host) cache?.advance(batch.mask, T);
    else cache?.commit(newKeys, newValues, batch.mask, T);
    return hidden;
  }

  /**
   * One decode step as one native call (native/decode.c decodeStep): for one new token a row,
   * continuing a host KV cache (its prefill ran the native decoder block), the next-token logits
   * [B·V] that `logits(forward(step, { cache }))` gives, bit for bit: the same kernels in the same
   * order (the embedding gather and position add, each layer's decoder block, the fused final
   * norm, the native BatchMatMul's sgemm for the LM head), without the tfjs dispatch, the
   * parameter lookups by name and the logits' read-back around them (at the GRPO bench job's
   * batch 32, ~40 % of a generation). Learned positions or RoPE (the step's tables passed).
   * Undefined, with nothing done, where it does not apply (the caller then runs forward): T > 1,
   * a tensor cache, LoRA or bf16 weights, dropout, sliding windows, a final soft-cap, bf16 products, or the LM head or final norm not on the
   * native kernels. `out` [B·V], if given, receives the logits (and is returned) instead of a new
   * array.
   */
  decodeStep(step: TokenBatch, cache: KVCache, out?: Float32Array): Float32Array | undefined {
    const c = this.config;
    const { batch: B, length: T } = step;
    const run = nativeDecodeStep();
    if (
      !run ||
      T !== 1 ||
      cache.kind !== 'host' ||
      cache.batch !== B ||
      cache.length === 0 ||
      this.project !== plainProjection ||
      this.weights16 !== undefined ||
      this.dropoutMasks() !== undefined ||
      c.finalSoftcap !== undefined ||
      !this.hasLmHead ||
      !nativeDecodeSupports(c) ||
      !nativeDecodeAvailable() ||
      bf16Product(B) ||
      !nativeHeadAndNorm(c)
    ) {
      return undefined;
    }
    for (let l = 0; l < c.layers; l++) if (layerAttention(c, l) !== 'full') return undefined;
    const positions = positionIds(step, cache.seen);
    const limit = positionLimit(c);
    for (const p of positions) if (p >= limit) return undefined; // forward says why
    const views = this.decodeViews();
    if (!views) return undefined;
    const P = cache.length;
    if (out && out.length !== B * c.vocabSize) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `decodeStep: 'out' holds ${out.length} floats, the logits are ${B}·${c.vocabSize}`,
      );
    }
    // the key mask (attentionBias for one query at position P without a window: 0 at real keys,
    // −1e9 elsewhere, which the native step writes)
    const keyMask = cache.keyMaskWith(step.mask, 1);
    const kv = Array.from({ length: c.layers }, (_, l) =>
      cache.hostLayer(l, c.kvHeads, c.headDim, 1),
    );
    const capacity = kv[0].capacity;
    if (kv.some((h) => h.capacity !== capacity)) return undefined;
    const L = c.layers;
    // RoPE: the step's tables as forward makes them (every layer is of the full kind here)
    let cos: Float32Array = EMPTY;
    let sin: Float32Array = EMPTY;
    const rope = forwardRope(c, positions, B, 1).full;
    if (rope) {
      cos = rope.cos.dataSync() as Float32Array;
      sin = rope.sin.dataSync() as Float32Array;
      tf.dispose([rope.cos, rope.sin]);
    }
    const v = views.get();
    const dims = Int32Array.of(
      B,
      1,
      c.hidden,
      c.heads,
      c.kvHeads,
      c.headDim,
      c.intermediate,
      P,
      capacity,
      c.norm === 'rmsnorm' ? (c.normUnitOffset ? 2 : 1) : 0,
      { gelu: 0, swiglu: 1, geglu: 2 }[c.mlp],
      rope ? cos.length / B : c.headDim,
      c.qkNorm ? 1 : 0,
      c.sandwichNorms ? 1 : 0,
      0,
      L,
      c.vocabSize,
      c.tieEmbeddings ? 1 : 0,
      c.positions === 'learned' ? 1 : 0,
    );
    const floats = Float64Array.of(
      c.normEps,
      c.queryScale ?? 1 / Math.sqrt(c.headDim),
      c.attnSoftcap ?? 0,
      c.embedScale,
    );
    const logits = out ?? new Float32Array(B * c.vocabSize);
    const n = DECODE_PARAMS.length;
    run(
      dims,
      floats,
      Int32Array.from(step.ids),
      positions,
      v[0],
      v[1],
      v.slice(2, 2 + L * n),
      v[2 + L * n],
      v[3 + L * n],
      v[4 + L * n],
      keyMask,
      cos,
      sin,
      kv.map((h) => h.k),
      kv.map((h) => h.v),
      logits,
    );
    cache.advance(step.mask, 1);
    return logits;
  }

  /**
   * decodeStep's tensors: the embedding, the position embedding, each layer's DECODE_PARAMS, the
   * final norm's gain and bias and the LM head's matrix, their views kept while the parameter set
   * is the same (a parameter added or the head changed makes a new list).
   */
  private decodeViews(): TensorViews | undefined {
    const c = this.config;
    const head = c.tieEmbeddings ? 'embed.weight' : 'lm_head.weight';
    const key = `${this.params.size}/${head}`;
    if (this.stepViews?.key === key) return this.stepViews.views;
    const get = (n: string) => this.params.get(n);
    const tensors = [
      get('embed.weight'),
      c.positions === 'learned' ? get('pos_embed.weight') : undefined,
    ];
    for (let l = 0; l < c.layers; l++)
      for (const n of DECODE_PARAMS) tensors.push(get(`layers.${l}.${n}`));
    tensors.push(get('final_norm.weight'), get('final_norm.bias'), get(head));
    const learned = c.positions === 'learned';
    if (!tensors[0] || (learned && !tensors[1]) || !tensors.at(-1) || !tensors.at(-3))
      return undefined;
    if (tensors.some((t) => t && t.dtype !== 'float32')) return undefined;
    this.stepViews = { key, views: new TensorViews(tensors) };
    return this.stepViews.views;
  }

  /** Next-token logits (soft-capped where the config says so).  hidden: [B, T, d]  →  [B, T, V] */
  logits(hidden: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [B, T, d] = hidden.shape;
      return tf.reshape(this.headLogits(tf.reshape(hidden, [B * T, d])), [
        B,
        T,
        this.config.vocabSize,
      ]);
    });
  }

  /** Logits of rows of hidden states, soft-capped where the config says so.  h: [N, d] → [N, V] */
  headLogits(h: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const w16 = this.weights16?.head(this.config.tieEmbeddings);
      const z = w16 ? w16Linear(h, w16) : this.fp32Logits(h); // (N, V)
      const cap = this.config.finalSoftcap;
      return cap === undefined ? z : tf.mul(tf.tanh(tf.div(z, cap)), cap);
    });
  }

  private fp32Logits(h: tf.Tensor): tf.Tensor {
    const { weight, tied } = this.headWeight();
    return tied ? tf.matMul(h, weight, false, true) : tf.matMul(h, weight);
  }

  /**
   * log π(label) of rows of hidden states at a sampling temperature τ: log-softmax(z/τ)[label]
   * with z the (soft-capped) logits. Without a soft-cap the head runs chunked (lm-head.ts: never
   * all [N, V] logits, h/τ in place of z/τ); with one, through the whole logits.
   *   h: [N, d]   labels: [N] int32  →  [N]
   */
  tokenLogProbs(h: tf.Tensor, labels: tf.Tensor, temperature = 1): tf.Tensor {
    return tf.tidy(() => {
      const w16 = this.weights16?.head(this.config.tieEmbeddings);
      if (w16 && this.config.finalSoftcap === undefined) {
        return bf16HeadLogProbs(temperature === 1 ? h : tf.div(h, temperature), w16, labels);
      }
      if (this.config.finalSoftcap === undefined) {
        const { weight, tied } = this.headWeight();
        return headLogProbs(temperature === 1 ? h : tf.div(h, temperature), weight, labels, tied);
      }
      const z = this.headLogits(h);
      return logProbsFromLogits(temperature === 1 ? z : tf.div(z, temperature), labels);
    });
  }

  /** The LM head's matrix: the embedding [V, d] when tied, else `lm_head.weight` [d, V]. */
  headWeight(): { weight: tf.Variable; tied: boolean } {
    const tied = this.config.tieEmbeddings;
    if (!this.hasLmHead) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        'This model has no LM head: it was saved as a sequence classifier (a reward model), which ' +
          'scores sequences but cannot give next-token logits',
      );
    }
    return { weight: need(this, tied ? 'embed.weight' : 'lm_head.weight'), tied };
  }

  /** Dropout masks for a training forward, or undefined (no key, or every rate 0). */
  private dropoutMasks(): DropoutMasks | undefined {
    const key = this.dropoutKey;
    const r = this.config.dropout;
    if (!key || (r.embedding === 0 && r.attention === 0 && r.residual === 0)) return undefined;
    return (purpose, shape, rate) =>
      RandomStream.of({ ...key, purpose: `dropout/${purpose}` }).dropoutMask(shape, rate);
  }

  /** Critic values, one per token.  hidden: [B, T, d]  →  [B, T] */
  values(hidden: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [B, T, d] = hidden.shape;
      const v = tf.matMul(tf.reshape(hidden, [B * T, d]), needHead(this, 'value_head'));
      return tf.reshape(v, [B, T]);
    });
  }

  /** Reward-model scores, read at each row's last real token.  hidden: [B, T, d]  →  [B] */
  scores(hidden: tf.Tensor, batch: TokenBatch): tf.Tensor {
    return tf.tidy(() => {
      const idx = tf.tensor2d(lastTokenIndex(batch), [batch.batch, 1], 'int32');
      const last = tf.gather(hidden, idx, 1, 1); // (B, 1, d)
      const s = tf.matMul(
        tf.reshape(last, [batch.batch, this.config.hidden]),
        needHead(this, 'score'),
      );
      return tf.reshape(s, [batch.batch]);
    });
  }

  /** The names of block l's parameters (what a checkpointed block takes as inputs). */
  blockParamNames(l: number): string[] {
    const prefix = `layers.${l}.`;
    return [...this.params.keys()].filter((n) => n.startsWith(prefix));
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.weights16 = undefined;
    this.stepViews = undefined;
  }
}

/**
 * Whether the final norm and the LM head of a cached forward run on the native kernels decodeStep
 * repeats: the fused norm kernel, and the native BLAS BatchMatMul (the active one can be the
 * XNNPACK or stock kernel: setWasmBatchMatMul), whose function makeNativeBatchMatMul names.
 */
function nativeHeadAndNorm(c: ModelConfig): boolean {
  const backend = tf.getBackend();
  const matMul = tf.getKernel('BatchMatMul', backend)?.kernelFunc;
  return (
    matMul?.name === 'nativeBatchMatMul' &&
    tf.getKernel(c.norm === 'layernorm' ? FUSED.layerNorm : FUSED.rmsNorm, backend) !== undefined
  );
}

function need(m: CausalLM, name: string): tf.Variable {
  const v = m.params.get(name);
  if (!v) throw new TroupeError('BAD_ARGUMENT', `Model has no parameter '${name}'`);
  return v;
}

function needHead(m: CausalLM, head: HeadName): tf.Variable {
  const v = m.params.get(`${head}.weight`);
  if (!v) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Model has no '${head}' head: create it with CausalLM.init(config, { heads: ['${head}'] }) ` +
        `or load a checkpoint that has one`,
    );
  }
  return v;
}

function initValue(c: ModelConfig, s: ParamSpec, seed: number): tf.Tensor {
  return tf.tensor(initData(c, s, seed), [...s.shape], 'float32');
}

/**
 * A parameter's initial values (`CausalLM.init`), on the host: each parameter's draws come from
 * a stream of its own (seed, name), so one can be made without the others (policy/bf16.ts builds
 * a frozen bf16 model matrix by matrix).
 */
export function initData(c: ModelConfig, s: ParamSpec, seed: number): Float32Array {
  const n = s.shape.reduce((a, b) => a * b, 1);
  if (s.kind === 'norm') {
    // Gemma's RMSNorm multiplies by 1 + γ: its identity gain is 0
    const zero = s.name.endsWith('.bias') || c.normUnitOffset;
    return new Float32Array(n).fill(zero ? 0 : 1);
  }
  if (s.kind === 'bias') return new Float32Array(n);
  const head = s.name.startsWith('value_head.') || s.name.startsWith('score.');
  const residual = /\.(attn\.o|mlp\.down)\.weight$/.test(s.name);
  const std = head ? 1 / Math.sqrt(c.hidden + 1) : residual ? 0.02 / Math.sqrt(2 * c.layers) : 0.02;
  return RandomStream.of({ seed, step: 0, actor: 'init', purpose: s.name }).normal(n, 0, std);
}
