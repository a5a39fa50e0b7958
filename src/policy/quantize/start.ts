import { TroupeError } from '../../errors.js';
import type { ModelConfig } from '../config.js';
import { CausalLM } from '../model/causal-lm.js';
import type { HeadName } from '../params.js';
import type { ModelSource } from '../source.js';
import { quantizeModel } from './base.js';
import { loadQuantizedModel } from './load.js';

/** The quantisation a trainable model's base can take (`model.quantize`). */
export type QuantizeMode = 'nf4';

/** What `startQuantized` needs of the trainable's arguments. */
export interface QuantizedStartArgs {
  readonly model:
    | { readonly config: ModelConfig; readonly seed: number }
    | { readonly source: ModelSource };
  readonly quantize: QuantizeMode;
  readonly lora?: unknown;
  readonly heads?: readonly HeadName[];
}

/**
 * The frozen NF4 base of a QLoRA run: the start model quantised as it loads (a fresh model is
 * built in fp32, then quantised). Also how a resumed run gets its base back: a QLoRA checkpoint
 * holds the adapters, not the base, and quantising the same start again gives the same codes.
 * Refused, with the reason: no LoRA (a 4-bit base is not trained), heads (a checkpoint would have
 * to carry them beside the adapters), a LoRA checkpoint as the start (merge it first).
 */
export async function startQuantized(args: QuantizedStartArgs): Promise<CausalLM> {
  const field = 'model.quantize';
  if (!args.lora) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${field}: '${args.quantize}' needs LoRA: a base stored in 4 bits is frozen (QLoRA trains ` +
        'LoRA adapters on top of it); set model.lora, or drop quantize to train the whole model',
      { details: { field } },
    );
  }
  if ((args.heads ?? []).length > 0) {
    throw new TroupeError(
      'UNSUPPORTED',
      `${field}: a model with a ${args.heads!.join(' and ')} head cannot be quantised yet (its ` +
        'checkpoint would have to carry the trained head beside the adapters)',
      { details: { field } },
    );
  }
  if (!('source' in args.model)) {
    const model = CausalLM.init(args.model.config, { seed: args.model.seed });
    await quantizeModel(model);
    return model;
  }
  const source = args.model.source;
  if (source.adapters.length > 0) {
    throw new TroupeError(
      'UNSUPPORTED',
      `${field}: ${source.path} is a LoRA checkpoint; QLoRA quantises a plain model. Merge it ` +
        'first (troupe merge) and start from the merged directory',
      { details: { field, path: source.path } },
    );
  }
  return (await loadQuantizedModel(source.base)).model;
}
