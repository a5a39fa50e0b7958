import { lookup, TroupeError } from '../../errors.js';
import type { LossOutput } from './common.js';
import { dpoSigmoidLoss, ipoLoss } from './dpo.js';
import {
  isPaired,
  type PairedInputs,
  type PreferenceInputs,
  type PreferenceParams,
  type UnpairedInputs,
} from './inputs.js';
import { ktoLoss } from './kto.js';
import { orpoLoss } from './orpo.js';
import { simpoLoss } from './simpo.js';

/*
 * The preference-loss registry: direct alignment losses on per-sequence log-probs, named as
 * TRL's `loss_type`s. Each loss is a pure, synchronous function in its own file; adding one is
 * that file plus one line below.
 */

export type PreferenceLossName = 'sigmoid' | 'ipo' | 'simpo' | 'orpo' | 'kto';

/**
 * A registered preference loss: call it like the function it wraps, after it has checked that
 * the inputs have its layout. `needsReference`: whether it reads π_ref log-probs (so whether the
 * trainer must run a reference model). `layout`: 'paired' takes `PairedInputs` (chosen and
 * rejected responses per prompt), 'unpaired' takes `UnpairedInputs` (KTO's labelled examples).
 */
export interface PreferenceLoss {
  (inputs: PreferenceInputs, params: PreferenceParams): LossOutput;
  readonly needsReference: boolean;
  readonly layout: 'paired' | 'unpaired';
}

function paired(
  name: PreferenceLossName,
  needsReference: boolean,
  fn: (inputs: PairedInputs, params: PreferenceParams) => LossOutput,
): PreferenceLoss {
  const loss = (inputs: PreferenceInputs, params: PreferenceParams) => {
    if (!isPaired(inputs)) throw wrongLayout(name, 'paired', 'policyChosenLogps');
    return fn(inputs, params);
  };
  return Object.assign(loss, { needsReference, layout: 'paired' as const });
}

function unpaired(
  name: PreferenceLossName,
  fn: (inputs: UnpairedInputs, params: PreferenceParams) => LossOutput,
): PreferenceLoss {
  const loss = (inputs: PreferenceInputs, params: PreferenceParams) => {
    if (isPaired(inputs)) throw wrongLayout(name, 'unpaired', 'policyLogps');
    return fn(inputs, params);
  };
  return Object.assign(loss, { needsReference: true, layout: 'unpaired' as const });
}

function wrongLayout(name: string, layout: string, field: string): TroupeError {
  return new TroupeError(
    'BAD_ARGUMENT',
    `Preference loss '${name}' takes ${layout} inputs (with '${field}'); ` +
      (layout === 'paired'
        ? `KTO-style labelled examples go to 'kto'`
        : `chosen/rejected pairs go to 'sigmoid', 'ipo', 'simpo' or 'orpo'`),
    { details: { loss: name, layout } },
  );
}

export const PREFERENCE_LOSSES: ReadonlyMap<PreferenceLossName, PreferenceLoss> = new Map([
  ['sigmoid', paired('sigmoid', true, dpoSigmoidLoss)],
  ['ipo', paired('ipo', true, ipoLoss)],
  ['simpo', paired('simpo', false, simpoLoss)],
  ['orpo', paired('orpo', false, orpoLoss)],
  ['kto', unpaired('kto', ktoLoss)],
]);

function find(name: string): PreferenceLoss {
  return lookup(PREFERENCE_LOSSES as ReadonlyMap<string, PreferenceLoss>, name, 'preference loss');
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
  return find(name)(inputs, params);
}

/** Whether the `name` loss reads reference-model log-probs (UNKNOWN_NAME if not registered). */
export function needsReference(name: string): boolean {
  return find(name).needsReference;
}
