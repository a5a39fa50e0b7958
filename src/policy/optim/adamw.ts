import { z } from 'zod';
import { parseOptions, refuseUnknownKeys } from '../../config/options.js';
import { TroupeError } from '../../errors.js';
import {
  type AdamWScalars,
  adamwDevice,
  adamwHost,
  nativeAdamWKernel,
  nativeOptim,
} from '../../kernels/custom/native-optim.js';
import * as tf from '../../kernels/tf.js';
import type { ParamSpec } from '../params.js';
import { adamwInPlace, adamwInPlaceMany, type InPlaceUpdate } from './adamw-inplace.js';
import {
  type AdamWStateDict,
  checkAdamWState,
  MOMENTS,
  readStateTensors,
  stateTensorName,
} from './state.js';

/*
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
 * Regularization", ICLR 2019, Algorithm 2), with PyTorch `torch.optim.AdamW` semantics
 * (amsgrad=False, maximize=False). For each trainable parameter p with gradient g, at its own
 * update count t:
 *
 *   p ← p − lr·λ·p                    decoupled decay (only where the decay rule says so)
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g²
 *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * which is p − lr·m̂/(√v̂ + ε) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), in PyTorch's order of
 * operations. As in PyTorch, a parameter with no gradient in a step is skipped entirely (no
 * decay, no moment update, t unchanged): tfjs `variableGrads` omits unconnected variables.
 *
 * (Past 300 lines: one optimiser. The device step, the host step (optim.offload: moments in host
 * memory, native kernel) and the state dict read the same per-parameter slots in the same order
 * of operations, and are checked against each other by the optimiser tests; the options schema
 * sits above them with each option's meaning.)
 */

export type ParamKind = ParamSpec['kind'];

/** Where each parameter's kind comes from: the model's specs (a map or list) or a lookup. */
export type KindSource =
  | ReadonlyMap<string, ParamSpec>
  | readonly ParamSpec[]
  | ((name: string) => ParamKind | undefined);

const beta = z
  .number()
  .min(0, 'must be in [0, 1)')
  .lt(1, 'must be in [0, 1): β = 1 would never forget a gradient');
const predicate = z.custom<(name: string) => boolean>(
  (v) => typeof v === 'function',
  'must be a function (name: string) => boolean',
);

const KEYS = [
  'lr',
  'betas',
  'eps',
  'weightDecay',
  'decayEmbeddings',
  'decayNormsAndBiases',
  'noDecay',
  'trainable',
  'offload',
] as const;

export const adamwOptionsSchema = z
  .strictObject(
    {
      /** Learning rate used when `step` is not given one (PyTorch default 1e-3). */
      lr: z.number().min(0, 'must be a finite number ≥ 0').default(1e-3),
      /** (β1, β2): decay rates of the first and second moment estimates. */
      betas: z.tuple([beta, beta]).default([0.9, 0.999]),
      /** ε, added to √v̂ for numerical stability. */
      eps: z.number().min(0, 'must be ≥ 0').default(1e-8),
      /** λ, the decoupled weight decay (PyTorch AdamW default 0.01). */
      weightDecay: z.number().min(0, 'must be ≥ 0').default(0.01),
      /** Decay `embedding` parameters too (default no, as minGPT; nanoGPT and HF Trainer do). */
      decayEmbeddings: z.boolean().optional(),
      /** Decay `norm` and `bias` parameters too (default: no). */
      decayNormsAndBiases: z.boolean().optional(),
      /** Replaces the kind rule: a parameter is decayed unless `noDecay(name)`. */
      noDecay: predicate.optional(),
      /** Which parameters of the map are trained (default: all). LoRA: only the adapters. */
      trainable: predicate.optional(),
      /**
       * Keep the moments in host memory and update on the host (`stepOnHost`), as DeepSpeed's
       * optimizer offload: the device holds the parameters only (2/3 less optimizer memory there).
       */
      offload: z.boolean().default(false),
    },
    { error: refuseUnknownKeys(KEYS) },
  )
  .superRefine((o, ctx) => {
    if (o.noDecay && (o.decayEmbeddings !== undefined || o.decayNormsAndBiases !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['noDecay'],
        message:
          'replaces the kind rule, so it cannot be combined with decayEmbeddings or ' +
          'decayNormsAndBiases. Pass either the predicate or the flags.',
      });
    }
  });

export type AdamWOptions = z.input<typeof adamwOptionsSchema>;
export type ResolvedAdamWOptions = Readonly<z.output<typeof adamwOptionsSchema>>;

/** One trainable parameter and its optimizer state: on the device, or on the host (offload). */
interface Slot {
  readonly param: tf.Variable;
  readonly decay: boolean;
  readonly m: tf.Variable | Float32Array; // exp_avg, p's shape
  readonly v: tf.Variable | Float32Array; // exp_avg_sq, p's shape
  t: number;
}

function kindLookup(specs: KindSource): (name: string) => ParamSpec | ParamKind | undefined {
  if (typeof specs === 'function') return specs;
  const map =
    specs instanceof Map ? specs : new Map((specs as ParamSpec[]).map((s) => [s.name, s]));
  return (name) => map.get(name);
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Zeros of `shape` as a non-trainable variable (so `variableGrads()` never differentiates it). */
function zerosVariable(shape: number[]): tf.Variable {
  const z = tf.zeros(shape);
  const v = tf.variable(z, false);
  z.dispose();
  return v;
}

function checkLr(lr: number, method: string): void {
  if (!Number.isFinite(lr) || lr < 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `AdamW.${method}: lr must be a finite number ≥ 0, got ${lr}`,
      { details: { lr } },
    );
  }
}

function checkGradScale(gradScale: number, method: string): void {
  if (!Number.isFinite(gradScale) || gradScale < 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `AdamW.${method}: gradScale must be a finite number ≥ 0, got ${gradScale}`,
      { details: { gradScale } },
    );
  }
}

function checkGradShape(
  name: string,
  shape: readonly number[],
  param: tf.Variable,
  method: string,
): void {
  if (sameShape(shape, param.shape)) return;
  throw new TroupeError(
    'SHAPE_MISMATCH',
    `AdamW.${method}: gradient for '${name}' has shape [${shape}] but parameter '${name}' ` +
      `has shape [${param.shape}]`,
    { details: { param: name, grad: [...shape], shape: param.shape } },
  );
}

export class AdamW {
  readonly options: ResolvedAdamWOptions;
  private readonly slots = new Map<string, Slot>();
  private readonly frozen = new Set<string>();
  private steps = 0;
  private disposed = false;

  /**
   * @param params the model's parameters by name; updated in place with `assign`.
   * @param specs  their kinds, for the decay rule (a `ParamSpec` whose shape disagrees with the
   *               variable is an error). Only needed for trainable parameters, and not at all
   *               with a `noDecay` predicate.
   */
  constructor(
    params: ReadonlyMap<string, tf.Variable>,
    specs: KindSource,
    options: AdamWOptions = {},
  ) {
    this.options = parseOptions(adamwOptionsSchema, options, 'AdamW');
    const o = this.options;
    const specOf = kindLookup(specs);
    for (const [name, param] of params) {
      if (o.trainable && !o.trainable(name)) {
        this.frozen.add(name);
        continue;
      }
      const found = specOf(name);
      const spec = typeof found === 'object' ? found : undefined;
      const kind = typeof found === 'object' ? found.kind : found;
      if (spec && !sameShape(spec.shape, param.shape)) {
        throw new TroupeError(
          'SHAPE_MISMATCH',
          `AdamW: parameter '${name}' has shape [${param.shape}] but its ParamSpec says [${spec.shape}]`,
          { details: { param: name, shape: param.shape, spec: [...spec.shape] } },
        );
      }
      if (kind === undefined && !o.noDecay) {
        throw new TroupeError(
          'UNKNOWN_NAME',
          `AdamW: no ParamSpec kind for trainable parameter '${name}', so the weight-decay rule ` +
            `cannot place it. Pass its spec, or a noDecay predicate.`,
          { details: { param: name } },
        );
      }
      const decay = o.noDecay
        ? !o.noDecay(name)
        : kind === 'matrix' ||
          (kind === 'embedding' && o.decayEmbeddings === true) ||
          ((kind === 'norm' || kind === 'bias') && o.decayNormsAndBiases === true);
      this.slots.set(name, {
        param,
        decay,
        m: o.offload ? new Float32Array(param.size) : zerosVariable(param.shape),
        v: o.offload ? new Float32Array(param.size) : zerosVariable(param.shape),
        t: 0,
      });
    }
  }

  /** Number of `step()` calls so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** Names of the parameters this optimizer updates, in the params map's order. */
  get trainableNames(): string[] {
    return [...this.slots.keys()];
  }

  /** Whether trainable parameter `name` gets weight decay. */
  decays(name: string): boolean {
    return this.slot(name, 'decays').decay;
  }

  /**
   * One update of every trainable parameter that has a gradient in `grads` (each of its
   * parameter's shape, or a host array of its size: the native kernels read it where it is,
   * tfjs' ops from a tensor made of it), multiplied by `gradScale` first (a caller's mean and
   * clip factor, so it needs no pass of its own). The grads are only read; the caller disposes
   * them. All grads are
   * checked before anything is written, so an error leaves parameters and state untouched.
   * Synchronous: no tensor is read back.
   */
  step(
    grads: ReadonlyMap<string, tf.Tensor | Float32Array>,
    lr: number = this.options.lr,
    gradScale = 1,
  ): void {
    this.live('step');
    if (this.options.offload) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        'AdamW.step: this optimizer keeps its state on the host (offload); call stepOnHost',
      );
    }
    checkLr(lr, 'step');
    checkGradScale(gradScale, 'step');
    const work: Array<[Slot, tf.Tensor | Float32Array]> = [];
    for (const [name, g] of grads) {
      const s = this.slot(name, 'step');
      if (!(g instanceof Float32Array)) checkGradShape(name, g.shape, s.param, 'step');
      else if (g.length !== s.param.size) checkGradShape(name, [g.length], s.param, 'step');
      work.push([s, g]);
    }
    const [b1, b2] = this.options.betas;
    const { eps, weightDecay } = this.options;
    this.steps++;
    // The native kernel: one pass per parameter instead of ~10 tfjs kernels (see scalars).
    const fused = nativeAdamWKernel();
    // Where parameter and moments can be written where they are (nothing shares them), one
    // native call updates them all (adamwInPlaceMany); the rest take the kernel one at a time.
    const batched = fused ? adamwInPlaceMany(this.updates(work, lr, gradScale)) : [];
    // One tidy per parameter: the temporaries of one update are freed before the next, so the
    // peak is one parameter's worth, not the whole model's (it matters at GPT-2 size on wasm).
    for (const [i, [s, grad]] of work.entries()) {
      if (batched[i]) {
        s.t++;
        continue;
      }
      tf.tidy(() => {
        const g0 = grad instanceof Float32Array ? tf.tensor(grad, s.param.shape, 'float32') : grad;
        s.t++;
        const sm = s.m as tf.Variable;
        const sv = s.v as tf.Variable;
        if (fused && g0.dtype === 'float32') {
          const k = this.scalars(s, lr, gradScale);
          // cpu backend: in place where nothing shares the arrays (adamw-inplace.ts)
          if (adamwInPlace(s.param, g0, sm, sv, k)) return;
          const [p, m, v] = adamwDevice(s.param, g0, sm, sv, k);
          s.param.assign(p);
          sm.assign(m);
          sv.assign(v);
          return;
        }
        const g = gradScale === 1 ? g0 : tf.mul(g0, gradScale);
        const bc1 = 1 - b1 ** s.t;
        const bc2 = 1 - b2 ** s.t;
        let p: tf.Tensor = s.param;
        if (s.decay && weightDecay !== 0) p = tf.mul(p, 1 - lr * weightDecay); // p ← p(1 − lr·λ)
        const m = tf.add(tf.mul(sm, b1), tf.mul(g, 1 - b1)); // m ← β1·m + (1 − β1)·g
        const v = tf.add(tf.mul(sv, b2), tf.mul(tf.square(g), 1 - b2)); // v ← β2·v + (1 − β2)·g²
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps); // √v̂ + ε
        s.param.assign(tf.sub(p, tf.mul(tf.div(m, denom), lr / bc1))); // p ← p − lr·m̂/(√v̂ + ε)
        sm.assign(m);
        sv.assign(v);
      });
    }
  }

  /** Each slot's update at its next count (not yet incremented), for adamwInPlaceMany. */
  private updates(
    work: ReadonlyArray<readonly [Slot, tf.Tensor | Float32Array]>,
    lr: number,
    gradScale: number,
  ): InPlaceUpdate[] {
    return work.map(([s, grad]) => ({
      param: s.param,
      grad,
      m: s.m,
      v: s.v,
      scalars: this.scalars(s, lr, gradScale, s.t + 1),
    }));
  }

  /**
   * The scalars of one slot's update at count `t` (default: its count, already incremented),
   * for the native kernels, which compute as stepOnHost's JS loop: double arithmetic, float32
   * storage.
   */
  private scalars(s: Slot, lr: number, gradScale: number, t = s.t): AdamWScalars {
    const [beta1, beta2] = this.options.betas;
    return {
      lr,
      beta1,
      beta2,
      eps: this.options.eps,
      weightDecay: s.decay ? this.options.weightDecay : 0,
      bc1: 1 - beta1 ** t,
      bc2: 1 - beta2 ** t,
      gradScale,
    };
  }

  /** Whether the moments live on the host (`options.offload`). */
  get offloaded(): boolean {
    return this.options.offload;
  }

  /**
   * `step` with the state on the host: the gradients are host arrays (each its parameter's
   * size) or tensors (its shape), multiplied by `gradScale` as in `step`; each parameter is
   * updated by the same formulas (float32 storage, float64 arithmetic) into a new tensor that
   * replaces it. With the native addon on wasm or cpu that is one pass over the parameter's own
   * storage (and a tensor gradient's); otherwise the parameter (and a tensor gradient) is read,
   * updated on a copy and written back. One parameter's copy exists at a time.
   */
  async stepOnHost(
    grads: ReadonlyMap<string, Float32Array | tf.Tensor>,
    lr: number = this.options.lr,
    gradScale = 1,
  ): Promise<void> {
    this.live('stepOnHost');
    if (!this.options.offload) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        'AdamW.stepOnHost: this optimizer keeps its state on the device; call step',
      );
    }
    checkLr(lr, 'stepOnHost');
    checkGradScale(gradScale, 'stepOnHost');
    const work: Array<[Slot, Float32Array | tf.Tensor]> = [];
    for (const [name, g] of grads) {
      const s = this.slot(name, 'stepOnHost');
      if (!(g instanceof Float32Array)) checkGradShape(name, g.shape, s.param, 'stepOnHost');
      else if (g.length !== s.param.size) checkGradShape(name, [g.length], s.param, 'stepOnHost');
      work.push([s, g]);
    }
    const [b1, b2] = this.options.betas;
    const { eps, weightDecay } = this.options;
    this.steps++;
    const addon = nativeOptim();
    // Parameters written where they are (nothing shares them), in one native call.
    const batched = adamwInPlaceMany(this.updates(work, lr, gradScale));
    for (const [i, [s, g0]] of work.entries()) {
      s.t++;
      if (batched[i]) continue;
      const m = s.m as Float32Array;
      const v = s.v as Float32Array;
      const k = this.scalars(s, lr, gradScale);
      if (adamwInPlace(s.param, g0, m, v, k)) continue;
      const updated = adamwHost(s.param, g0, m, v, k);
      if (updated) {
        s.param.assign(updated);
        updated.dispose();
        continue;
      }
      const g = g0 instanceof Float32Array ? g0 : ((await g0.data()) as Float32Array);
      // A copy: the cpu backend's data() is the tensor's own array.
      const p = new Float32Array((await s.param.data()) as Float32Array);
      if (addon) {
        addon.adamwStep(p, g, m, v, k.lr, b1, b2, eps, k.weightDecay, k.bc1, k.bc2, gradScale);
      } else {
        const sbc2 = Math.sqrt(k.bc2);
        const shrink = s.decay && weightDecay !== 0 ? 1 - lr * weightDecay : 1;
        const step = lr / k.bc1;
        for (let i = 0; i < p.length; i++) {
          const gi = gradScale === 1 ? g[i] : Math.fround(g[i] * gradScale);
          m[i] = b1 * m[i] + (1 - b1) * gi;
          v[i] = b2 * v[i] + (1 - b2) * gi * gi;
          p[i] = p[i] * shrink - (step * m[i]) / (Math.sqrt(v[i]) / sbc2 + eps);
        }
      }
      tf.tidy(() => s.param.assign(tf.tensor(p, s.param.shape, 'float32')));
    }
  }

  /** The optimizer's state as plain data (see state.ts); reads tensors, so async. */
  async stateDict(): Promise<AdamWStateDict> {
    this.live('stateDict');
    const { betas, eps, weightDecay, lr } = this.options;
    const paramSteps: Record<string, number> = {};
    const entries: Array<[string, tf.Tensor]> = [];
    const host = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, s] of this.slots) {
      paramSteps[name] = s.t;
      for (const [moment, x] of [
        ['exp_avg', s.m],
        ['exp_avg_sq', s.v],
      ] as const) {
        const key = stateTensorName(moment, name);
        if (x instanceof Float32Array)
          host.set(key, { shape: [...s.param.shape], data: x.slice() });
        else entries.push([key, x]);
      }
    }
    const meta = {
      optimizer: 'adamw' as const,
      step: this.steps,
      paramSteps,
      betas: [betas[0], betas[1]] as [number, number],
      eps,
      weightDecay,
      lr,
    };
    const tensors = await readStateTensors(entries);
    for (const [k, t] of host) tensors.set(k, t);
    return { tensors, meta };
  }

  /**
   * Restore state saved by `stateDict()`: moments and step counts, for exactly the trainable
   * parameters of this optimizer, under the same betas, eps and weight decay. Everything is
   * checked before anything is written. Continuing from it gives bit-identical parameters to a
   * run that never stopped (on the same backend).
   */
  loadStateDict(dict: AdamWStateDict): void {
    this.live('loadStateDict');
    const shapes = new Map([...this.slots].map(([n, s]) => [n, s.param.shape]));
    checkAdamWState(dict, shapes, this.options);
    tf.tidy(() => {
      for (const [name, s] of this.slots) {
        for (const moment of MOMENTS) {
          const { shape, data } = dict.tensors.get(stateTensorName(moment, name))!;
          const x = moment === 'exp_avg' ? s.m : s.v;
          if (x instanceof Float32Array) x.set(data);
          else x.assign(tf.tensor(data, shape, 'float32'));
        }
        s.t = dict.meta.paramSteps[name];
      }
    });
    this.steps = dict.meta.step;
  }

  /** Free the moment variables. The parameters belong to the model and are left alone. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of this.slots.values()) {
      for (const x of [s.m, s.v]) if (!(x instanceof Float32Array)) x.dispose();
    }
  }

  private live(method: string): void {
    if (this.disposed) {
      throw new TroupeError('BAD_ARGUMENT', `AdamW.${method}: the optimizer has been disposed`);
    }
  }

  private slot(name: string, method: string): Slot {
    this.live(method);
    const s = this.slots.get(name);
    if (s) return s;
    if (this.frozen.has(name)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `AdamW.${method}: parameter '${name}' is frozen (options.trainable excludes it); ` +
          `compute gradients for trainable parameters only`,
        { details: { param: name } },
      );
    }
    const known = this.trainableNames;
    const shown = known.slice(0, 8).join(', ') + (known.length > 8 ? `, … (${known.length})` : '');
    throw new TroupeError(
      'UNKNOWN_NAME',
      `AdamW.${method}: '${name}' is not a parameter of this optimizer. Trainable: ${shown}.`,
      { details: { param: name } },
    );
  }
}
