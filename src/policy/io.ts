import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import {
  loadHfDirectory,
  readCheckpointJson,
  type SaveOptions,
  saveHfDirectory,
} from './checkpoint/directory.js';
import { fromHfConfig } from './checkpoint/hf-config.js';
import { readSafetensors, writeSafetensors } from './checkpoint/safetensors.js';
import type { ModelConfig } from './config.js';
import { CausalLM } from './model/causal-lm.js';
import type { AdamW, AdamWStateDict } from './optim/index.js';
import type { HeadName } from './params.js';
import { loadLoraAdapter } from './peft.js';
import { type ModelSource, resolveModelSource } from './source.js';

const HEADS: readonly HeadName[] = ['value_head', 'score'];

export interface LoadModelOptions {
  /** Heads to add beside those the checkpoint has. */
  readonly heads?: readonly HeadName[];
}

/**
 * Load the model a path leads to (see `ModelSource`): a Hugging Face directory as it is, a run
 * directory's best (else latest) checkpoint, a LoRA checkpoint as its base with the adapter
 * merged into the weights. Heads in the checkpoint come with it.
 */
export async function loadModel(
  path: string | ModelSource,
  opts: LoadModelOptions = {},
): Promise<CausalLM> {
  const source = typeof path === 'string' ? await resolveModelSource(path) : path;
  const model = await loadHfModel(source.base, opts);
  try {
    for (const dir of source.adapters) (await loadLoraAdapter(model, dir)).mergeAndUnload();
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The model config a path leads to (its base's config.json), without reading any weights. */
export async function readModelConfig(path: string | ModelSource): Promise<ModelConfig> {
  const source = typeof path === 'string' ? await resolveModelSource(path) : path;
  const file = join(source.base, 'config.json');
  return fromHfConfig(await readCheckpointJson(file, 'model config'), file);
}

/**
 * The model in one Hugging Face directory exactly as its config.json and weights say: no run
 * directory or adapter is looked for (a trainer resuming its own LoRA checkpoint loads the base
 * this way and attaches the adapter as trainable).
 */
export async function loadHfModel(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
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
  const meta = (await readCheckpointJson(metaFile, 'optimizer state')) as AdamWStateDict['meta'];
  const { tensors } = await readSafetensors(join(dir, OPTIMIZER_WEIGHTS));
  optimizer.loadStateDict({ tensors, meta });
}
