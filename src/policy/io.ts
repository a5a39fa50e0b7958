import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../errors.js';
import { writeFileAtomic } from './checkpoint/atomic.js';
import { loadHfDirectory, type SaveOptions, saveHfDirectory } from './checkpoint/directory.js';
import { readSafetensors, writeSafetensors } from './checkpoint/safetensors.js';
import { CausalLM } from './model/causal-lm.js';
import type { AdamW, AdamWStateDict } from './optim/index.js';
import type { HeadName } from './params.js';

const HEADS: readonly HeadName[] = ['value_head', 'score'];

/** Load a model saved in the Hugging Face layout; heads in the checkpoint come with it. */
export async function loadModel(
  dir: string,
  opts: { heads?: readonly HeadName[] } = {},
): Promise<CausalLM> {
  const { config, state } = await loadHfDirectory(dir);
  const heads = [
    ...new Set([...(opts.heads ?? []), ...HEADS.filter((h) => state.has(`${h}.weight`))]),
  ];
  return CausalLM.fromState(config, state, heads);
}

/**
 * Save a model in the Hugging Face layout (what `transformers` reads). LoRA adapters are not
 * part of the base model: merge them first, or save them with `saveLoraAdapter`.
 */
export async function saveModel(
  dir: string,
  model: CausalLM,
  opts: SaveOptions = {},
): Promise<void> {
  const state = await model.stateDict();
  for (const name of [...state.keys()]) if (name.includes('.lora_')) state.delete(name);
  await saveHfDirectory(dir, model.config, state, opts);
}

export const OPTIMIZER_WEIGHTS = 'optimizer.safetensors';
export const OPTIMIZER_META = 'optimizer.json';

/** Save an optimizer's moments and step counts beside a checkpoint. */
export async function saveOptimizer(dir: string, optimizer: AdamW): Promise<void> {
  const { tensors, meta } = await optimizer.stateDict();
  await writeSafetensors(join(dir, OPTIMIZER_WEIGHTS), tensors, {
    metadata: { optimizer: meta.optimizer },
  });
  await writeFileAtomic(join(dir, OPTIMIZER_META), `${JSON.stringify(meta, null, 2)}\n`);
}

/** Restore what `saveOptimizer` wrote into an optimizer built over the same parameters. */
export async function loadOptimizer(dir: string, optimizer: AdamW): Promise<void> {
  const metaFile = join(dir, OPTIMIZER_META);
  let meta: AdamWStateDict['meta'];
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8'));
  } catch (e) {
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${metaFile}: cannot read the optimizer state: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const { tensors } = await readSafetensors(join(dir, OPTIMIZER_WEIGHTS));
  optimizer.loadStateDict({ tensors, meta });
}
