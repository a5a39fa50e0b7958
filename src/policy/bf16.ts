import { TroupeError } from '../errors.js';
import { DECODE_PROJECTIONS } from '../kernels/custom/native-decode.js';
import { matmulPrecision } from '../kernels/precision.js';
import * as tf from '../kernels/tf.js';
import { Bf16Weights } from './model/bf16-weights.js';
import { plainProjection } from './model/block.js';
import type { CausalLM } from './model/causal-lm.js';

/*
 * bf16 weights for the models that are never trained (precision bf16): the generator, the
 * reference and the reward model keep their matrices as bfloat16 (model/bf16-weights.ts), half
 * the memory of float32, and read them as they are (the bf16 kernels with fp32 sums). The policy
 * keeps fp32 masters; a generator's sync rounds the published weights into its bf16 matrices.
 */

/** The parameters `holdBf16` keeps as bf16: the block projections, the embedding, the LM head. */
export function bf16Names(model: CausalLM): string[] {
  const names: string[] = [];
  for (let l = 0; l < model.config.layers; l++)
    for (const n of DECODE_PROJECTIONS) names.push(`layers.${l}.${n}`);
  names.push('embed.weight', 'lm_head.weight');
  return names.filter((n) => model.params.has(n));
}

/**
 * Keep a frozen model's matrices as bf16 in place: each is read, rounded (nearest even) and its
 * fp32 variable disposed, one at a time. Refused for a model with LoRA adapters or an NF4 base
 * (its projection is not the plain one). Returns the bf16 matrices.
 */
export async function holdBf16(model: CausalLM): Promise<Bf16Weights> {
  if (model.weights16) return model.weights16;
  if (model.project !== plainProjection) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'bf16 weights: this model has LoRA adapters or an NF4 base; only a plain model is held as bf16 (merge the adapters first)',
    );
  }
  const held = new Bf16Weights();
  for (const name of bf16Names(model)) {
    const v = model.params.get(name)!;
    const [rows, cols] = v.shape as [number, number];
    held.add(name, [rows, cols], (await v.data()) as Float32Array);
    v.dispose();
    model.params.delete(name);
    model.specs.delete(name);
  }
  model.weights16 = held;
  model.project = held.projection;
  return held;
}

/**
 * A frozen role's model for this thread's precision: under bf16 held as bf16 (`holdBf16`), else
 * as it is. A model with adapters is left in fp32.
 */
export async function frozenForPrecision(model: CausalLM): Promise<CausalLM> {
  if (matmulPrecision() === 'bf16' && model.project === plainProjection) await holdBf16(model);
  return model;
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
