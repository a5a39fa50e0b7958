import { type DropoutRates, type ModelConfig, NO_DROPOUT } from './config.js';
import { loadHfModel, loadModel, loadOptimizer, saveModel, saveOptimizer } from './io.js';
import { Lora, type LoraConfig } from './lora.js';
import { CausalLM } from './model/causal-lm.js';
import { AdamW, type AdamWOptions } from './optim/index.js';
import type { HeadName } from './params.js';
import { loadLoraAdapter, saveLoraAdapter } from './peft.js';
import { quantizedBase } from './quantize/base.js';
import { type QuantizeMode, startQuantized } from './quantize/start.js';
import type { ModelSource } from './source.js';
import { optimizerStep, type Reducer, type StepOutcome, type WeightedLoss } from './train-step.js';

/** How a trainable model is built: fresh, from a saved directory, or resumed from a checkpoint. */
export interface TrainableArgs {
  /**
   * A fresh model from a config and seed, or a resolved model path (`resolveModelSource`: a
   * Hugging Face directory, a run's checkpoint, a LoRA checkpoint whose adapter is merged in).
   */
  readonly model:
    | { readonly config: ModelConfig; readonly seed: number }
    | { readonly source: ModelSource };
  /** Heads to add (a fresh `score` head for a reward model, `value_head` for a critic). */
  readonly heads?: readonly HeadName[];
  readonly optimizer?: AdamWOptions;
  /** Global gradient-norm clip; 0 = off. Default 1. */
  readonly maxGradNorm?: number;
  /** Recompute blocks in backward. */
  readonly gradientCheckpointing?: boolean;
  /** Train LoRA adapters only (the base stays frozen). */
  readonly lora?: LoraConfig & { readonly seed: number };
  /**
   * QLoRA: the base's projections stored as NF4 (src/policy/quantize), frozen, the adapters on
   * top; needs `lora`. The base is quantised from the start model again on a resume.
   */
  readonly quantize?: QuantizeMode;
  /** Continue from a checkpoint written by `saveCheckpoint` (weights or adapters + optimizer). */
  readonly resumeFrom?: string;
  /**
   * Dropout while training: `true` the model config's rates (a checkpoint's `attn_pdrop`,
   * `attention_dropout`, …), `false` none, or rates given here (absent ones from the config);
   * `seed` keys the masks with the step and actor. Default: none.
   */
  readonly dropout?: { readonly rates: boolean | Partial<DropoutRates>; readonly seed: number };
}

/**
 * A model with its optimizer (and adapters): what every training role holds. One step is
 * `step(lossFns, lr, step)`; saving writes the model (or PEFT adapters) and the optimizer state.
 */
export class Trainable {
  readonly trainableNames: string[];

  private constructor(
    readonly model: CausalLM,
    readonly optimizer: AdamW,
    readonly lora: Lora | undefined,
    private readonly args: TrainableArgs,
    private readonly reducer: Reducer | undefined,
    private readonly actor: string,
  ) {
    this.trainableNames = lora ? lora.trainableNames : [...model.params.keys()];
  }

  static async create(args: TrainableArgs, actor: string, reducer?: Reducer): Promise<Trainable> {
    // A resumed checkpoint holds the whole model: base and heads, and with LoRA the adapters
    // beside them, attached below as trainable (so the base is read as it is, not merged).
    const heads = args.heads ?? [];
    let model: CausalLM;
    if (args.quantize) {
      model = await startQuantized({ ...args, quantize: args.quantize });
    } else if (args.resumeFrom || 'source' in args.model) {
      model = args.resumeFrom
        ? await loadHfModel(args.resumeFrom)
        : await loadModel((args.model as { source: ModelSource }).source);
      for (const h of heads) if (!model.param(`${h}.weight`)) addHead(model, h, 0);
    } else model = CausalLM.init(args.model.config, { seed: args.model.seed, heads });
    let lora: Lora | undefined;
    if (args.lora) {
      lora = args.resumeFrom
        ? await loadLoraAdapter(model, args.resumeFrom)
        : new Lora(model, args.lora, { seed: args.lora.seed });
    }
    // Heads are trained alongside adapters (a LoRA reward model learns its score head too).
    const names = new Set(
      lora ? [...lora.trainableNames, ...heads.map((h) => `${h}.weight`)] : model.params.keys(),
    );
    // LoRA: the base is frozen in tfjs as well, so nothing differentiates it (the LM head then
    // skips its [V, d] weight gradient)
    if (lora) for (const [n, v] of model.params) v.trainable = names.has(n);
    const opt = new AdamW(model.params, model.specs, {
      ...args.optimizer,
      trainable: (n) => names.has(n),
    });
    if (args.resumeFrom) await loadOptimizer(args.resumeFrom, opt);
    const rates = args.dropout?.rates ?? false;
    if (rates === false) model.setDropout(NO_DROPOUT);
    else if (rates !== true) model.setDropout({ ...model.config.dropout, ...rates });
    const t = new Trainable(model, opt, lora, args, reducer, actor);
    t.trainableNames.splice(0, t.trainableNames.length, ...names);
    return t;
  }

  /** Parameters in the trainable set (what a data-parallel group all-reduces). */
  get trainableSize(): number {
    return this.trainableNames.reduce((n, k) => n + this.model.params.get(k)!.size, 0);
  }

  get gradientCheckpointing(): boolean {
    return this.args.gradientCheckpointing ?? false;
  }

  /** One optimiser step over micro-batch losses; `step` keys the dropout draws (model and LoRA). */
  async step(
    lossFns: ReadonlyArray<() => WeightedLoss>,
    lr: number,
    step: number,
  ): Promise<StepOutcome> {
    if (this.lora) this.lora.dropoutKey = { seed: this.args.lora!.seed, step, actor: this.actor };
    if (this.args.dropout)
      this.model.dropoutKey = { seed: this.args.dropout.seed, step, actor: this.actor };
    try {
      return await optimizerStep(this.model, this.optimizer, lossFns, {
        lr,
        maxGradNorm: this.args.maxGradNorm ?? 1,
        reducer: this.reducer,
        trainable: this.trainableNames,
      });
    } finally {
      if (this.lora) this.lora.dropoutKey = undefined;
      this.model.dropoutKey = undefined;
    }
  }

  /** The model (HF layout) — or the PEFT adapters and heads — plus the optimizer state. */
  async saveCheckpoint(dir: string): Promise<void> {
    if (this.lora && quantizedBase(this.model)) {
      // QLoRA: the adapters alone; the base they name is quantised again when they are loaded
      const start = 'source' in this.args.model ? this.args.model.source.base : undefined;
      await saveLoraAdapter(dir, this.lora, { baseModel: start });
    } else if (this.lora) {
      // PEFT's base_model_name_or_path: the model this run started from (where it was); the
      // base itself is saved beside the adapter, which is what Troupe and transformers load.
      const start = 'source' in this.args.model ? this.args.model.source.dir : undefined;
      await saveLoraAdapter(dir, this.lora, { baseModel: start });
      await saveModel(dir, this.model); // the base (with heads) beside the adapters: a resume needs both
    } else await saveModel(dir, this.model);
    await saveOptimizer(dir, this.optimizer);
  }

  /** The model with LoRA merged in, as a plain HF directory. */
  async saveMerged(dir: string): Promise<void> {
    if (this.lora) this.lora.merge();
    try {
      await saveModel(dir, this.model);
    } finally {
      if (this.lora) this.lora.unmerge();
    }
  }

  /** Every trainable parameter concatenated in name order. */
  async flatParams(): Promise<Float32Array> {
    const out = new Float32Array(this.trainableSize);
    let off = 0;
    for (const n of this.trainableNames) {
      const data = await this.model.params.get(n)!.data();
      out.set(data, off);
      off += data.length;
    }
    return out;
  }
}

function addHead(model: CausalLM, head: HeadName, seed: number): void {
  const fresh = CausalLM.init({ ...model.config, layers: 1 }, { seed, heads: [head] });
  try {
    model.addParam(fresh.specs.get(`${head}.weight`)!, fresh.params.get(`${head}.weight`)!);
  } finally {
    fresh.dispose();
  }
}
