import { lookup, TroupeError } from '../../errors.js';
import type { LossOutput } from './common.js';
import { dpoSigmoidLoss, IPO, ipoLoss, SIGMOID } from './dpo.js';
import {
  isPaired,
  type PairedInputs,
  type PreferenceInputs,
  type PreferenceLossSpec,
  type PreferenceParams,
  type UnpairedInputs,
} from './inputs.js';
import { KTO, ktoLoss } from './kto.js';
import { ORPO, orpoLoss } from './orpo.js';
import { SIMPO, simpoLoss } from './simpo.js';

/*
 * The preference-loss registry: direct alignment losses on per-sequence log-probs, named as
 * TRL's `loss_type`s. Each loss is a pure, synchronous function in its own file with the spec of
 * what it reads beside it; adding one is that file plus one line in `BUILT_IN`. The config's
 * `dpo.loss`, the trainer (reference or not, paired or unpaired batches, which hyperparameters)
 * and docs/algorithms.md all read this registry.
 */

/**
 * A registered preference loss: call it like the function it wraps, after it has checked that
 * the inputs have its layout; its spec (`PreferenceLossSpec`: layout, needsReference, lengths,
 * params) says what it reads.
 */
export interface PreferenceLoss extends PreferenceLossSpec {
  (inputs: PreferenceInputs, params: PreferenceParams): LossOutput;
  /** One line for the docs: what it is and where it comes from. */
  readonly summary: string;
  /**
   * A loss registered outside Troupe (`registerPreferenceLoss`): the module that registers it,
   * which each learner thread imports before it looks the loss up. Unset for the built-ins.
   */
  readonly module?: string;
}

/** A paired loss `fn` as a registry entry (its spec's layout must be 'paired'). */
export function pairedLoss(
  name: string,
  fn: (inputs: PairedInputs, params: PreferenceParams) => LossOutput,
  spec: PreferenceLossSpec,
  about: { readonly summary: string; readonly module?: string },
): PreferenceLoss {
  const loss = (inputs: PreferenceInputs, params: PreferenceParams) => {
    if (!isPaired(inputs)) throw wrongLayout(name, 'paired', 'policyChosenLogps');
    return fn(inputs, params);
  };
  return Object.assign(loss, { ...spec, layout: 'paired' as const, ...about });
}

/** An unpaired loss `fn` (KTO's layout) as a registry entry. */
export function unpairedLoss(
  name: string,
  fn: (inputs: UnpairedInputs, params: PreferenceParams) => LossOutput,
  spec: PreferenceLossSpec,
  about: { readonly summary: string; readonly module?: string },
): PreferenceLoss {
  const loss = (inputs: PreferenceInputs, params: PreferenceParams) => {
    if (isPaired(inputs)) throw wrongLayout(name, 'unpaired', 'policyLogps');
    return fn(inputs, params);
  };
  return Object.assign(loss, { ...spec, layout: 'unpaired' as const, ...about });
}

function wrongLayout(name: string, layout: string, field: string): TroupeError {
  const other = [...registry].filter(([, l]) => l.layout !== layout).map(([n]) => `'${n}'`);
  return new TroupeError(
    'BAD_ARGUMENT',
    `Preference loss '${name}' takes ${layout} inputs (with '${field}'); ` +
      (layout === 'paired' ? 'KTO-style labelled examples' : 'chosen/rejected pairs') +
      ` go to ${other.join(', ')}`,
    { details: { loss: name, layout } },
  );
}

const BUILT_IN = {
  sigmoid: pairedLoss('sigmoid', dpoSigmoidLoss, SIGMOID, {
    summary: 'DPO (Rafailov et al. 2023); cDPO with labelSmoothing (Mitchell 2023)',
  }),
  ipo: pairedLoss('ipo', ipoLoss, IPO, {
    summary: 'IPO (Azar et al. 2023): the per-token log-ratio margin regressed to 1/(2β)',
  }),
  simpo: pairedLoss('simpo', simpoLoss, SIMPO, {
    summary: 'SimPO (Meng et al. 2024): length-normalised, reference-free, target margin γ',
  }),
  orpo: pairedLoss('orpo', orpoLoss, ORPO, {
    summary: 'ORPO (Hong et al. 2024): NLL plus λ times the odds-ratio term, reference-free',
  }),
  kto: unpairedLoss('kto', ktoLoss, KTO, {
    summary:
      'KTO (Ethayarajh et al. 2024): each pair unpaired into a desirable and an undesirable example',
  }),
} as const satisfies Record<string, PreferenceLoss>;

/** The built-in losses' names (a registered loss is named by any string the registry holds). */
export type PreferenceLossName = keyof typeof BUILT_IN;

const registry = new Map<string, PreferenceLoss>(Object.entries(BUILT_IN));

/** Every preference loss by name: the built-ins, then those registered, in that order. */
export const PREFERENCE_LOSSES: ReadonlyMap<string, PreferenceLoss> = registry;

/** Names a registry entry may take: what config files and metric names can carry. */
const NAME = /^[a-z][a-z0-9_-]*$/;

/**
 * Add a preference loss to the registry (make it with `pairedLoss` / `unpairedLoss`, setting
 * `module` to the registering module's `import.meta.url` so that learner threads can load it).
 * After this, `dpo.loss: <name>` validates and trains with it. A taken or malformed name is
 * refused.
 */
export function registerPreferenceLoss(name: string, loss: PreferenceLoss): void {
  if (!NAME.test(name)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Preference loss name '${name}': lower-case letters, digits, - and _, starting with a letter`,
    );
  }
  if (registry.has(name)) {
    throw new TroupeError('BAD_ARGUMENT', `Preference loss '${name}' is already registered`, {
      details: { loss: name },
    });
  }
  registry.set(name, loss);
}

/** The registry entry of `name`; UNKNOWN_NAME listing the registered names if there is none. */
export function preferenceLossEntry(name: string): PreferenceLoss {
  return lookup(registry, name, 'preference loss');
}

/**
 * The `name` loss on `inputs` (shapes in `PairedInputs` / `UnpairedInputs`). Throws
 * UNKNOWN_NAME listing the registered names for an unknown `name`, BAD_ARGUMENT for inputs of
 * the wrong layout or missing/refused fields, SHAPE_MISMATCH for ragged rows.
 */
export function preferenceLoss(
  name: string,
  inputs: PreferenceInputs,
  params: PreferenceParams,
): LossOutput {
  return preferenceLossEntry(name)(inputs, params);
}

/** Whether the `name` loss reads reference-model log-probs (UNKNOWN_NAME if not registered). */
export function needsReference(name: string): boolean {
  return preferenceLossEntry(name).needsReference;
}
