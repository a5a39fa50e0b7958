import { TroupeError } from '../../errors.js';
import type * as tf from '../../kernels/tf.js';

/**
 * A paired preference batch: row b of every tensor is one prompt x_b with its chosen response
 * y_c and its rejected response y_r. Log-probs are per sequence, summed over response tokens
 * (`sequenceLogps(...).sum`), as TRL's `concatenated_forward` produces them; the losses that
 * want per-token means (ipo, simpo, orpo) divide by the lengths themselves.
 */
export interface PairedInputs {
  /** (B,) float32: log π_θ(y_c|x) = Σ_t log π_θ(y_c,t | x, y_c,<t). */
  readonly policyChosenLogps: tf.Tensor;
  /** (B,) float32: log π_θ(y_r|x). */
  readonly policyRejectedLogps: tf.Tensor;
  /** (B,) float32: log π_ref(y_c|x). Needed by sigmoid and ipo; simpo and orpo refuse it. */
  readonly refChosenLogps?: tf.Tensor;
  /** (B,) float32: log π_ref(y_r|x). Needed by sigmoid and ipo; simpo and orpo refuse it. */
  readonly refRejectedLogps?: tf.Tensor;
  /**
   * (B,) int32 or float32: response token counts |y_c| (`sequenceLogps(...).count`). Needed by
   * ipo, simpo and orpo, which work on per-token means log π(y)/|y|; refused by the others.
   */
  readonly chosenLengths?: tf.Tensor;
  /** (B,) int32 or float32: |y_r|. Needed by ipo, simpo and orpo. */
  readonly rejectedLengths?: tf.Tensor;
  /**
   * () float32: the mean token NLL of the chosen responses, for orpo and for simpo with
   * `cpoAlpha > 0`. When absent those losses use −Σ_b log π(y_c) / Σ_b |y_c| from the inputs
   * above: the token mean over response tokens, which is what TRL's CPOTrainer computes. Pass it
   * to use another set of tokens (TRL's ORPOTrainer ≥ 0.12 takes prompt + response tokens).
   */
  readonly chosenNll?: tf.Tensor;
}

/**
 * An unpaired batch for KTO: N completions, each labelled desirable or undesirable, plus the
 * inputs of the KL reference point z0 (either the mismatched-pair log-probs or z0 itself).
 */
export interface UnpairedInputs {
  /** (N,) float32: log π_θ(y_i|x_i), summed over response tokens. */
  readonly policyLogps: tf.Tensor;
  /** (N,) float32: log π_ref(y_i|x_i). */
  readonly refLogps: tf.Tensor;
  /** (N,) float32, int32 or bool: 1 where y_i is desirable, 0 where it is undesirable. */
  readonly desirable: tf.Tensor;
  /**
   * (M,) float32: log π_θ(y'_j|x_j) on mismatched pairs, completions shifted by one row within
   * the batch as in TRL `_get_kl_dataset` (x_j with the completion of row j − 1). With
   * `refKlLogps`; exclusive with `kl`.
   */
  readonly policyKlLogps?: tf.Tensor;
  /** (M,) float32: log π_ref(y'_j|x_j) on the same mismatched pairs. */
  readonly refKlLogps?: tf.Tensor;
  /**
   * () or (1,) float32: a precomputed batch KL estimate, e.g. already averaged over
   * data-parallel ranks (TRL `gather_for_metrics(kl).mean()`). Clamped at 0 and detached here.
   */
  readonly kl?: tf.Tensor;
}

export type PreferenceInputs = PairedInputs | UnpairedInputs;

/**
 * Hyperparameters of the preference losses, one record for all of them like TRL's configs.
 * A loss refuses a field it does not read (so a SimPO margin given to DPO is an error, not a
 * silent no-op) and any field not listed here.
 */
export interface PreferenceParams {
  /**
   * β > 0. sigmoid/ipo/kto: the KL-penalty strength of the implicit reward β·log(π/π_ref) (TRL
   * default 0.1; for ipo it is τ and the target margin is 1/(2τ)). simpo: the reward scale
   * (SimPO paper: 2–2.5). orpo: λ, the weight of the odds-ratio term (TRL `beta`, default 0.1).
   */
  readonly beta: number;
  /** ε ∈ [0, 0.5]: cDPO label smoothing, the assumed rate of flipped labels (sigmoid, simpo). Default 0. */
  readonly labelSmoothing?: number;
  /** γ: SimPO's target reward margin, subtracted inside the sigmoid (TRL `simpo_gamma`, default 0.5). simpo only. */
  readonly gamma?: number;
  /**
   * α ≥ 0: weight of the chosen NLL added to the simpo loss (TRL `cpo_alpha`). Default 0, pure
   * SimPO; TRL's CPOConfig defaults to 1, which is CPO-SimPO. simpo only.
   */
  readonly cpoAlpha?: number;
  /** λ_D > 0: weight of the desirable examples' loss (TRL `desirable_weight`, default 1). kto only. */
  readonly desirableWeight?: number;
  /** λ_U > 0: weight of the undesirable examples' loss (TRL `undesirable_weight`, default 1). kto only. */
  readonly undesirableWeight?: number;
}

export type PreferenceParamName = keyof PreferenceParams;

/**
 * What a preference loss reads, declared once beside the loss: its registry entry carries it
 * (the trainer reads it to decide whether to run a reference model, how to batch the data and
 * which hyperparameters to pass), and the loss's own checks enforce it.
 */
export interface PreferenceLossSpec {
  /**
   * 'paired': `PairedInputs`, a chosen and a rejected response per prompt. 'unpaired':
   * `UnpairedInputs` (KTO), each response labelled desirable or not; the trainer unpairs the
   * pairs and builds each batch's mismatched rows, whose reference log-probs it therefore asks
   * for at every step.
   */
  readonly layout: 'paired' | 'unpaired';
  /** Reads π_ref log-probs: the trainer runs a reference model for it. */
  readonly needsReference: boolean;
  /** Reads each response's token count |y| (per-token means; paired losses). */
  readonly lengths: boolean;
  /** The hyperparameters it reads besides `beta`, in the order its errors list them. */
  readonly params: readonly PreferenceParamName[];
}

const PARAM_RULES: Readonly<Record<PreferenceParamName, [string, (v: number) => boolean]>> = {
  beta: ['a positive finite number', (v) => v > 0 && Number.isFinite(v)],
  labelSmoothing: ['a number in [0, 0.5]', (v) => v >= 0 && v <= 0.5],
  gamma: ['a finite number', (v) => Number.isFinite(v)],
  cpoAlpha: ['a non-negative finite number', (v) => v >= 0 && Number.isFinite(v)],
  desirableWeight: ['a positive finite number', (v) => v > 0 && Number.isFinite(v)],
  undesirableWeight: ['a positive finite number', (v) => v > 0 && Number.isFinite(v)],
};
const PARAM_NAMES = Object.keys(PARAM_RULES) as PreferenceParamName[];

/**
 * Check `params` for preference loss `loss`, which reads the fields in `reads` (always `beta`):
 * unknown fields, fields the loss does not read, and out-of-range values are refused.
 */
export function checkParams(
  loss: string,
  params: PreferenceParams,
  reads: readonly PreferenceParamName[],
): void {
  const bad = (message: string, field: string) =>
    new TroupeError('BAD_ARGUMENT', `Preference loss '${loss}': ${message}`, {
      details: { loss, field },
    });
  for (const [key, value] of Object.entries(params)) {
    if (!(PARAM_NAMES as string[]).includes(key)) {
      throw bad(`unknown parameter '${key}'. Known: ${PARAM_NAMES.join(', ')}.`, key);
    }
    if (value === undefined) continue;
    const name = key as PreferenceParamName;
    if (name !== 'beta' && !reads.includes(name)) {
      throw bad(
        `does not read '${name}'; it reads ${['beta', ...reads].join(', ')}. Remove '${name}' ` +
          `or choose a loss that uses it.`,
        name,
      );
    }
    const [want, ok] = PARAM_RULES[name];
    if (typeof value !== 'number' || !ok(value)) {
      throw bad(`'${name}' must be ${want}; got ${String(value)}.`, name);
    }
  }
  if (params.beta === undefined) throw bad(`'beta' is required (TRL's default is 0.1).`, 'beta');
}

/** True when `inputs` is the paired (chosen/rejected) layout. */
export function isPaired(inputs: PreferenceInputs): inputs is PairedInputs {
  return 'policyChosenLogps' in inputs;
}

/**
 * Check the per-row vectors passed to `op`: each present one is rank 1 with the same length
 * B ≥ 1 and float32 (names in `counts` may also be int32 or bool). Returns B.
 */
export function checkRows(
  op: string,
  rows: Readonly<Record<string, tf.Tensor | undefined>>,
  counts: readonly string[] = [],
): number {
  let B = -1;
  let first = '';
  for (const [name, t] of Object.entries(rows)) {
    if (t === undefined) continue;
    const isCount = counts.includes(name);
    if (!(t.dtype === 'float32' || (isCount && (t.dtype === 'int32' || t.dtype === 'bool')))) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Argument '${name}' passed to '${op}' must be float32${isCount ? ', int32 or bool' : ''}; ` +
          `got ${t.dtype}`,
        { details: { op, argument: name, dtype: t.dtype } },
      );
    }
    if (t.rank !== 1 || (B >= 0 && t.shape[0] !== B)) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `Argument '${name}' passed to '${op}' must be a vector [B]` +
          (B >= 0 ? ` of the length of '${first}' [${B}]` : '') +
          `; got [${t.shape.join(',')}]`,
        { details: { op, argument: name, shape: t.shape } },
      );
    }
    if (B < 0) {
      B = t.shape[0];
      first = name;
    }
  }
  if (B === 0) {
    throw new TroupeError('BAD_ARGUMENT', `'${op}' got an empty batch ('${first}' is [0])`);
  }
  return B;
}

/** Throw unless every named input is present, saying why `op` needs them. */
export function requireInputs(
  op: string,
  inputs: object,
  names: readonly string[],
  why: string,
): void {
  const missing = names.filter((n) => (inputs as Record<string, unknown>)[n] === undefined);
  if (missing.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `'${op}' needs ${missing.map((n) => `'${n}'`).join(' and ')}: ${why}`,
      { details: { op, missing } },
    );
  }
}

/** Throw if any named input is present, saying why `op` refuses them. */
export function refuseInputs(
  op: string,
  inputs: object,
  names: readonly string[],
  why: string,
): void {
  const given = names.filter((n) => (inputs as Record<string, unknown>)[n] !== undefined);
  if (given.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `'${op}' does not take ${given.map((n) => `'${n}'`).join(' or ')}: ${why}`,
      { details: { op, refused: given } },
    );
  }
}

/** Throw unless `t` is a float32 scalar (or holds a single element). */
export function checkScalar(op: string, name: string, t: tf.Tensor): void {
  if (t.dtype !== 'float32' || t.size !== 1) {
    throw new TroupeError(
      t.dtype !== 'float32' ? 'BAD_ARGUMENT' : 'SHAPE_MISMATCH',
      `Argument '${name}' passed to '${op}' must be a float32 scalar; got ${t.dtype} ` +
        `[${t.shape.join(',')}]`,
      { details: { op, argument: name, shape: t.shape } },
    );
  }
}

/** What a paired loss reads besides the policy log-probs: its spec, and whether it has an NLL term. */
export interface PairedNeeds {
  /** Reads refChosenLogps/refRejectedLogps (required) or refuses them (reference-free). */
  readonly needsReference: boolean;
  /** Reads chosenLengths/rejectedLengths (required) or refuses them. */
  readonly lengths: boolean;
  /** May read chosenNll (optional) or refuses it. */
  readonly nll: boolean;
}

/** Validate the paired inputs of loss `op` against what it reads. Returns B. */
export function checkPairedInputs(op: string, inputs: PairedInputs, needs: PairedNeeds): number {
  const refs = ['refChosenLogps', 'refRejectedLogps'];
  const lengths = ['chosenLengths', 'rejectedLengths'];
  if (needs.needsReference) {
    requireInputs(op, inputs, refs, 'its implicit reward is β·log(π_θ/π_ref)');
  } else {
    refuseInputs(op, inputs, refs, 'it is reference-free (needsReference() is false)');
  }
  if (needs.lengths) {
    requireInputs(op, inputs, lengths, 'it works on per-token mean log-probs log π(y)/|y|');
  } else {
    refuseInputs(op, inputs, lengths, 'it works on summed log-probs');
  }
  if (!needs.nll) refuseInputs(op, inputs, ['chosenNll'], 'it has no NLL term');
  if (inputs.chosenNll !== undefined) checkScalar(op, 'chosenNll', inputs.chosenNll);
  return checkRows(
    op,
    {
      policyChosenLogps: inputs.policyChosenLogps,
      policyRejectedLogps: inputs.policyRejectedLogps,
      refChosenLogps: inputs.refChosenLogps,
      refRejectedLogps: inputs.refRejectedLogps,
      chosenLengths: inputs.chosenLengths,
      rejectedLengths: inputs.rejectedLengths,
    },
    lengths,
  );
}
