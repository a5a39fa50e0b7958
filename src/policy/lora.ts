import { TroupeError } from '../errors.js';
import { RandomStream, type StreamKey } from '../kernels/random.js';
import * as tf from '../kernels/tf.js';
import { need, type ParamLookup, type Projection } from './model/block.js';
import type { CausalLM } from './model/causal-lm.js';
import { linear } from './model/layers.js';
import { projectionShape, quantizedBase } from './quantize/base.js';

/*
 * LoRA (Hu et al. 2021) on a CausalLM: its config, which projections it targets (PEFT's names
 * and Troupe's, Phi-3's fused modules), and the Lora object that attaches A and B, routes the
 * projections (plain or NF4) through them, merges and unmerges. Saving in PEFT's layout is
 * peft.ts. (Past 300 lines: the target rules and the object that applies them are one piece.)
 */

/** LoRA (Hu et al. 2021): W' = W + (α/r)·A·B on chosen projections, only A and B trained. */
export interface LoraConfig {
  /** Rank r of the update. */
  readonly rank: number;
  /** Scale numerator α; the update is scaled by α/r. */
  readonly alpha: number;
  /** Dropout on the adapter's input during training. */
  readonly dropout: number;
  /**
   * Projections to adapt, by Troupe name (`q`, `k`, `v`, `o`, `gate`, `up`, `down`) or Hugging
   * Face name (`q_proj`, …, `c_attn`, `c_proj`, `c_fc`, `qkv_proj`, `gate_up_proj`). GPT-2's
   * `c_attn` and Phi-3's `qkv_proj` are one adapter over the fused q, k, v projection (A shared,
   * B split by columns), Phi-3's `gate_up_proj` one over gate and up, as PEFT builds them.
   */
  readonly targetModules: readonly string[];
}

/**
 * One adapter: A [in, r], B [r, out], applied to one projection or, for GPT-2's fused c_attn,
 * to q, k and v with B's columns split between them.
 */
export interface LoraSite {
  /** Where A and B live: `layers.{i}.attn.q` → `layers.{i}.attn.q.lora_A.weight`. */
  readonly prefix: string;
  /** Projections it feeds, with the columns of B each one takes. */
  readonly parts: readonly {
    readonly prefix: string;
    readonly begin: number;
    readonly size: number;
  }[];
  readonly inDim: number;
  readonly outDim: number;
}

const ALIASES: Record<string, string> = {
  q_proj: 'q',
  k_proj: 'k',
  v_proj: 'v',
  o_proj: 'o',
  gate_proj: 'gate',
  up_proj: 'up',
  down_proj: 'down',
  c_fc: 'up',
  'mlp.c_fc': 'up',
  'attn.c_proj': 'o',
  'mlp.c_proj': 'down',
  'attn.c_attn': 'c_attn',
  qkv_proj: 'qkv',
  'self_attn.qkv_proj': 'qkv',
  gate_up_proj: 'gate_up',
  'mlp.gate_up_proj': 'gate_up',
};
const KNOWN = [
  'q',
  'k',
  'v',
  'o',
  'gate',
  'up',
  'down',
  'c_attn',
  'c_proj',
  'qkv',
  'gate_up',
  ...Object.keys(ALIASES),
];

/** Phi-3 stores q/k/v and gate/up fused: its adapters (as PEFT's) sit on the fused modules. */
const PHI3_FUSED: Record<string, string> = {
  q: 'qkv_proj',
  k: 'qkv_proj',
  v: 'qkv_proj',
  gate: 'gate_up_proj',
  up: 'gate_up_proj',
};

/** Resolve target module names to Troupe projection names for a model's family. */
function targets(model: CausalLM, names: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const n of names) {
    if (!KNOWN.includes(n)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `LoRA target module '${n}' is unknown. Known: ${KNOWN.join(', ')}.`,
      );
    }
    const family = model.config.family;
    const name = ALIASES[n] ?? n;
    if (name === 'c_attn' || name === 'qkv') {
      if (family === 'llama') {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `LoRA target '${n}' is a fused q/k/v projection (GPT-2's c_attn, Phi-3's qkv_proj); use q, k, v for ${family}`,
        );
      }
      out.add('qkv');
    } else if (name === 'gate_up') {
      if (family !== 'phi3') {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `LoRA target '${n}' is Phi-3's fused gate/up projection; use gate, up for ${family}`,
        );
      }
      out.add('gate_up');
    } else if (n === 'c_proj') {
      out.add('o');
      out.add('down');
    } else if (family === 'phi3' && PHI3_FUSED[name]) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `LoRA target '${n}': Phi-3 fuses this projection; target '${PHI3_FUSED[name]}' (as PEFT does)`,
      );
    } else {
      out.add(name);
    }
  }
  if (model.config.mlp === 'gelu' && out.has('gate')) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `LoRA target 'gate' needs a gated MLP; this ${model.config.family} model has none`,
    );
  }
  return out;
}

function checkConfig(c: LoraConfig): void {
  if (!Number.isInteger(c.rank) || c.rank < 1)
    throw new TroupeError('BAD_ARGUMENT', `LoRA 'rank' must be an integer ≥ 1, got ${c.rank}`);
  if (!(c.alpha > 0))
    throw new TroupeError('BAD_ARGUMENT', `LoRA 'alpha' must be > 0, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new TroupeError('BAD_ARGUMENT', `LoRA 'dropout' must be in [0, 1), got ${c.dropout}`);
  if (c.targetModules.length === 0)
    throw new TroupeError(
      'BAD_ARGUMENT',
      `LoRA 'targetModules' is empty: name at least one projection`,
    );
}

/** Every adapter site the config asks for, in layer order. */
export function loraSites(model: CausalLM, cfg: LoraConfig): LoraSite[] {
  const want = targets(model, cfg.targetModules);
  const sites: LoraSite[] = [];
  const shape = (prefix: string) => projectionShape(model, prefix);
  for (let l = 0; l < model.config.layers; l++) {
    const p = `layers.${l}`;
    const fused = (name: string, parts: string[]) => {
      let begin = 0;
      const ps = parts.map((prefix) => {
        const size = shape(prefix)[1];
        const part = { prefix, begin, size };
        begin += size;
        return part;
      });
      sites.push({ prefix: `${p}.${name}`, parts: ps, inDim: model.config.hidden, outDim: begin });
    };
    if (want.has('qkv'))
      fused(
        'attn.qkv',
        ['q', 'k', 'v'].map((n) => `${p}.attn.${n}`),
      );
    if (want.has('gate_up')) fused('mlp.gate_up', [`${p}.mlp.gate`, `${p}.mlp.up`]);
    for (const [short, prefix] of [
      ['q', `${p}.attn.q`],
      ['k', `${p}.attn.k`],
      ['v', `${p}.attn.v`],
      ['o', `${p}.attn.o`],
      ['gate', `${p}.mlp.gate`],
      ['up', `${p}.mlp.up`],
      ['down', `${p}.mlp.down`],
    ]) {
      if (!want.has(short)) continue;
      const [inDim, outDim] = shape(prefix);
      sites.push({ prefix, parts: [{ prefix, begin: 0, size: outDim }], inDim, outDim });
    }
  }
  return sites;
}

/**
 * Adapters attached to a model. While attached (and not merged), every adapted projection
 * computes x·W + b + (α/r)·dropout(x)·A·B. A is initialised like PEFT (Kaiming-uniform,
 * a = √5: U(±1/√in)), B to zero, so the adapted model starts equal to the base one.
 */
export class Lora {
  readonly config: LoraConfig;
  readonly sites: readonly LoraSite[];
  readonly scale: number;
  private merged = false;
  /** The projection the adapters sit on: the plain one, or an NF4 base's (QLoRA). */
  private readonly base: Projection;
  /** Key of the current training step's dropout draws; undefined = no dropout (eval). */
  dropoutKey: StreamKey | undefined;
  private readonly byPart = new Map<string, { site: LoraSite; begin: number; size: number }>();

  constructor(
    readonly model: CausalLM,
    config: LoraConfig,
    opts: { seed: number },
  ) {
    checkConfig(config);
    this.config = Object.freeze({ ...config, targetModules: [...config.targetModules] });
    this.sites = loraSites(model, config);
    this.scale = config.alpha / config.rank;
    const r = config.rank;
    for (const s of this.sites) {
      const bound = 1 / Math.sqrt(s.inDim);
      const u = RandomStream.of({
        seed: opts.seed,
        step: 0,
        actor: 'lora-init',
        purpose: s.prefix,
      }).uniform(s.inDim * r);
      const a = tf.tensor(
        u.map((x) => (2 * x - 1) * bound),
        [s.inDim, r],
      );
      const b = tf.zeros([r, s.outDim]);
      model.addParam({ name: `${s.prefix}.lora_A.weight`, shape: [s.inDim, r], kind: 'matrix' }, a);
      model.addParam(
        { name: `${s.prefix}.lora_B.weight`, shape: [r, s.outDim], kind: 'matrix' },
        b,
      );
      tf.dispose([a, b]);
      for (const part of s.parts)
        this.byPart.set(part.prefix, { site: s, begin: part.begin, size: part.size });
    }
    this.base = model.project;
    model.project = this.projection();
  }

  /** Names of the adapter parameters: the only ones to train. */
  get trainableNames(): string[] {
    return this.sites.flatMap((s) => [`${s.prefix}.lora_A.weight`, `${s.prefix}.lora_B.weight`]);
  }

  get isMerged(): boolean {
    return this.merged;
  }

  private projection(): Projection {
    return (x, prefix, get) => {
      const base = this.base(x, prefix, get);
      const hit = this.byPart.get(prefix);
      if (!hit || this.merged) return base;
      return tf.add(base, this.update(x, hit.site, hit.begin, hit.size, get));
    };
  }

  /** (α/r)·dropout(x)·A·B[:, begin:begin+size].  x: [..., in] → [..., size] */
  private update(
    x: tf.Tensor,
    s: LoraSite,
    begin: number,
    size: number,
    get: ParamLookup,
  ): tf.Tensor {
    let input = x;
    if (this.dropoutKey && this.config.dropout > 0) {
      // Keyed by site, so a checkpointed block's recomputation draws the same mask.
      const rng = RandomStream.of({ ...this.dropoutKey, purpose: `lora-dropout/${s.prefix}` });
      input = tf.mul(x, rng.dropoutMask(x.shape, this.config.dropout));
    }
    const A = need(get, `${s.prefix}.lora_A.weight`);
    let B = need(get, `${s.prefix}.lora_B.weight`);
    if (size !== s.outDim) B = tf.slice(B, [0, begin], [this.config.rank, size]);
    return tf.mul(linear(linear(input, A), B), this.scale);
  }

  /** Fold the adapters into the base weights (W += (α/r)·A·B); the projection then skips them. */
  merge(): void {
    if (this.merged) throw new TroupeError('BAD_ARGUMENT', 'LoRA adapters are already merged');
    if (quantizedBase(this.model)) {
      throw new TroupeError(
        'UNSUPPORTED',
        'LoRA adapters cannot be merged into an NF4 base (model.quantize: nf4): its weights are ' +
          '4-bit. Save the adapters (PEFT) and merge them into the full-precision base with ' +
          '`troupe merge`, which loads it unquantised',
      );
    }
    this.fold(+1);
    this.merged = true;
  }

  /**
   * PEFT's `merge_and_unload`: fold the adapters into the base weights, then remove them from the
   * model (their parameters disposed, projections plain again). The model is then an ordinary
   * model, to which a new `Lora` can be attached; this object is no longer usable.
   */
  mergeAndUnload(): void {
    if (!this.merged) this.merge();
    for (const name of this.trainableNames) {
      this.model.params.get(name)!.dispose();
      this.model.params.delete(name);
      this.model.specs.delete(name);
    }
    this.model.project = this.base;
  }

  /** Undo `merge` (W −= (α/r)·A·B). */
  unmerge(): void {
    if (!this.merged) throw new TroupeError('BAD_ARGUMENT', 'LoRA adapters are not merged');
    this.fold(-1);
    this.merged = false;
  }

  private fold(sign: 1 | -1): void {
    for (const s of this.sites) {
      for (const part of s.parts) {
        const w = this.model.params.get(`${part.prefix}.weight`)!;
        tf.tidy(() => {
          let B: tf.Tensor = this.model.params.get(`${s.prefix}.lora_B.weight`)!;
          if (part.size !== s.outDim)
            B = tf.slice(B, [0, part.begin], [this.config.rank, part.size]);
          const delta = tf.matMul(this.model.params.get(`${s.prefix}.lora_A.weight`)!, B);
          w.assign(tf.add(w, tf.mul(delta, sign * this.scale)));
        });
      }
    }
  }
}
