import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import { DECODE_PROJECTIONS } from '../kernels/custom/native-decode.js';
import { matmulPrecision } from '../kernels/precision.js';
import * as tf from '../kernels/tf.js';
import { importData } from './checkpoint/hf-names.js';
import { FAMILIES } from './checkpoint/hf-rules.js';
import { readSafetensorsHeader } from './checkpoint/safetensors.js';
import { openHfStream } from './checkpoint/stream.js';
import type { Tensor32 } from './checkpoint/tensor32.js';
import type { ModelConfig } from './config.js';
import { loadModel } from './io.js';
import { Bf16Weights } from './model/bf16-weights.js';
import { plainProjection } from './model/block.js';
import { CausalLM, initData } from './model/causal-lm.js';
import { type HeadName, headSpecs, paramSpecs } from './params.js';
import { ADAPTER_WEIGHTS, loadLoraAdapter } from './peft.js';
import type { ModelSource } from './source.js';

/*
 * bf16 weights for the models that are never trained (precision bf16): the generator, the
 * reference and the reward model keep their matrices as bfloat16 (model/bf16-weights.ts), half
 * the memory of float32, and read them as they are (the bf16 kernels with fp32 sums). The policy
 * keeps fp32 masters; a generator's sync rounds the published weights into its bf16 matrices.
 *
 * A frozen model is held as bf16 as it is built (`loadFrozen`): each matrix is rounded from its
 * fp32 data on the host as it is read (a checkpoint's tensor, or a fresh model's draws) and only
 * the rest (norms, biases, heads) becomes backend tensors, so its fp32 matrices are never all
 * there at once, on the backend (a wasm heap) or on the host. `holdBf16` rounds a model that is
 * already in memory.
 */

/** Of `has`'s parameters, those held as bf16: the block projections, the embedding, the LM head. */
function heldNames(config: ModelConfig, has: (name: string) => boolean): string[] {
  const names: string[] = [];
  for (let l = 0; l < config.layers; l++)
    for (const n of DECODE_PROJECTIONS) names.push(`layers.${l}.${n}`);
  names.push('embed.weight', 'lm_head.weight');
  return names.filter(has);
}

/** The parameters `holdBf16` keeps as bf16: the block projections, the embedding, the LM head. */
export function bf16Names(model: CausalLM): string[] {
  return heldNames(model.config, (n) => model.params.has(n));
}

/**
 * Keep a frozen model's matrices as bf16 in place: each is read, rounded (nearest even) and its
 * fp32 variable disposed, one at a time. Refused for a model with LoRA adapters or an NF4 base
 * (its projection is not the plain one). A model already holding some as bf16 (a LoRA
 * checkpoint's merge, `loadFrozen`) has the rest added, all in `heldNames`' order. Returns the
 * bf16 matrices.
 */
export async function holdBf16(model: CausalLM): Promise<Bf16Weights> {
  const names = bf16Names(model);
  if (model.weights16 && names.length === 0) return model.weights16;
  if (model.project !== (model.weights16?.projection ?? plainProjection)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'bf16 weights: this model has LoRA adapters or an NF4 base; only a plain model is held as bf16 (merge the adapters first)',
    );
  }
  const held = model.weights16 ?? new Bf16Weights();
  for (const name of names) {
    const v = model.params.get(name)!;
    const [rows, cols] = v.shape as [number, number];
    held.add(name, [rows, cols], (await v.data()) as Float32Array);
    v.dispose();
    model.params.delete(name);
    model.specs.delete(name);
  }
  const all = heldNames(model.config, (n) => held.get(n) !== undefined);
  const matrices = all.map((n) => [n, held.get(n)!] as const);
  held.matrices.clear();
  for (const [n, w] of matrices) held.matrices.set(n, w);
  model.weights16 = held;
  model.project = held.projection;
  return held;
}

/**
 * A frozen role's model already in memory, for this thread's precision: under bf16 held as bf16
 * (`holdBf16`), else as it is. A model with adapters is left in fp32. `loadFrozen` builds one
 * without its fp32 matrices.
 */
export async function frozenForPrecision(model: CausalLM): Promise<CausalLM> {
  if (matmulPrecision() === 'bf16' && model.project === plainProjection) await holdBf16(model);
  return model;
}

/** How a frozen model is built: a resolved model path, or a config and seed (roles/models.ts). */
export type FrozenSpec =
  | { readonly source: ModelSource }
  | { readonly config: ModelConfig; readonly seed: number };

/**
 * A frozen model (the generator, the reference, a reward model) for this thread's precision:
 * under fp32 loaded (`loadModel`) or initialised (`CausalLM.init`) as a trainable one is; under
 * bf16 held as bf16 as it is built, matrix by matrix (see above), with the same bits as
 * `holdBf16` after the fp32 build. A LoRA checkpoint (adapters merged into the base) keeps the
 * matrices its adapters change in fp32 through the merge, then rounds them (`holdBf16`): the
 * merge is that of the fp32 model, so the bits are too. `heads` as in `loadModel` and
 * `CausalLM.init`.
 */
export async function loadFrozen(
  spec: FrozenSpec,
  opts: { readonly heads?: readonly HeadName[] } = {},
): Promise<CausalLM> {
  const bf16 = matmulPrecision() === 'bf16'; // read before the first await (withPrecision)
  if ('source' in spec) {
    const { base, adapters } = spec.source;
    if (!bf16) return loadModel(spec.source, opts);
    if (adapters.length === 0) return loadHeld(base, opts.heads ?? []);
    const targets = await adapterTargets(adapters);
    if (!targets) return holdLoaded(await loadModel(spec.source, opts));
    const model = await loadHeld(base, opts.heads ?? [], targets);
    if (!model) return holdLoaded(await loadModel(spec.source, opts));
    try {
      for (const dir of adapters) (await loadLoraAdapter(model, dir)).mergeAndUnload();
    } catch (e) {
      model.dispose();
      throw e;
    }
    return holdLoaded(model);
  }
  if (!bf16) return CausalLM.init(spec.config, { seed: spec.seed, heads: opts.heads ?? [] });
  return initHeld(spec.config, spec.seed, opts.heads ?? []);
}

async function holdLoaded(model: CausalLM): Promise<CausalLM> {
  try {
    await holdBf16(model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * A model from its bf16 matrices (`held`, in any order) and the rest of its parameters (`state`,
 * fp32, built on the backend now). The matrices go in `names`' order, as `holdBf16` holds them.
 */
function assemble(
  config: ModelConfig,
  names: readonly string[],
  held: Bf16Weights,
  state: Map<string, Tensor32>,
  heads: readonly HeadName[],
): CausalLM {
  const model = CausalLM.fromState(config, state, heads, { absent: new Set(names) });
  state.clear();
  const ordered = new Bf16Weights();
  for (const n of names) ordered.matrices.set(n, held.get(n)!);
  model.weights16 = ordered;
  model.project = ordered.projection;
  return model;
}

/**
 * The base tensors (HF names) PEFT adapters change: `base_model.model.<module>.lora_A.weight` →
 * `<module>.weight`. Undefined where a name is not of that form (`loadFrozen` then loads the
 * model in fp32 and lets the adapter loader judge it).
 */
async function adapterTargets(dirs: readonly string[]): Promise<Set<string> | undefined> {
  const out = new Set<string>();
  for (const dir of dirs) {
    const file = join(dir, ADAPTER_WEIGHTS);
    if (!existsSync(file)) return undefined;
    for (const name of (await readSafetensorsHeader(file)).tensors.keys()) {
      const m = /^base_model\.model\.(.+)\.lora_[AB]\.weight$/.exec(name);
      if (!m) return undefined;
      out.add(`${m[1]}.weight`);
    }
  }
  return out;
}

/**
 * A Hugging Face directory, its matrices rounded to bf16 one tensor at a time as they are read;
 * those of the HF tensors in `fp32` (a LoRA checkpoint's targets) are kept as fp32 parameters.
 * Undefined where an `fp32` name is not a tensor of the directory.
 */
async function loadHeld(dir: string, heads: readonly HeadName[]): Promise<CausalLM>;
async function loadHeld(
  dir: string,
  heads: readonly HeadName[],
  fp32: ReadonlySet<string>,
): Promise<CausalLM | undefined>;
async function loadHeld(
  dir: string,
  heads: readonly HeadName[],
  fp32: ReadonlySet<string> = new Set(),
): Promise<CausalLM | undefined> {
  const stream = await openHfStream(dir, { heads });
  const { config, shapes, rules } = stream;
  const fam = FAMILIES[config.family];
  const keep = new Set([...fp32].map((n) => fam.canonical(n)));
  if ([...keep].some((n) => !rules.some((r) => r.hf === n))) return undefined;
  const fp32Names = new Set(rules.filter((r) => keep.has(r.hf)).flatMap((r) => r.ours));
  const names = heldNames(config, (n) => shapes.has(n) && !fp32Names.has(n));
  const isHeld = new Set(names);
  const held = new Bf16Weights();
  const state = new Map<string, Tensor32>();
  for await (const { rule, t, ours } of stream.tensors()) {
    for (const [k, data] of importData(rule, t, ours).entries()) {
      const name = rule.ours[k];
      if (isHeld.has(name)) held.add(name, ours[k] as [number, number], data);
      else state.set(name, { shape: [...ours[k]], data });
    }
  }
  return assemble(config, names, held, state, stream.heads);
}

/** A fresh model (`CausalLM.init`'s draws), its matrices rounded to bf16 as each is drawn. */
function initHeld(config: ModelConfig, seed: number, heads: readonly HeadName[]): CausalLM {
  const specs = [...paramSpecs(config), ...heads.flatMap((h) => headSpecs(config, h))];
  const names = heldNames(config, (n) => specs.some((s) => s.name === n));
  const isHeld = new Set(names);
  const held = new Bf16Weights();
  const state = new Map<string, Tensor32>();
  for (const s of specs) {
    const data = initData(config, s, seed);
    if (isHeld.has(s.name)) held.add(s.name, s.shape as [number, number], data);
    else state.set(s.name, { shape: [...s.shape], data });
  }
  return assemble(config, names, held, state, heads);
}

/**
 * Copy published weights into a model (a generator's sync): fp32 parameters assigned, bf16-held
 * matrices rounded in place. `by` names the receiver in the error for a name the model lacks.
 */
export function assignWeights(
  model: CausalLM,
  state: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>,
  by: string,
): void {
  for (const [name, { shape, data }] of state) {
    const v = model.params.get(name);
    if (v) {
      tf.tidy(() => v.assign(tf.tensor(data, [...shape])));
    } else if (model.weights16?.get(name)) {
      model.weights16.assign(name, shape, data);
    } else {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${by}: the policy sent '${name}', which this model lacks`,
      );
    }
  }
}

/** Bytes a model's weights hold: its fp32 parameters and its bf16 matrices. */
export function modelWeightBytes(model: CausalLM): number {
  let n = model.weights16?.bytes ?? 0;
  for (const v of model.params.values()) n += v.size * 4;
  return n;
}
