import { build, type Obj, type Where } from '../json.js';
import type { ModelData } from '../spec.js';
import { BPE } from './bpe.js';
import type { Model, ModelKind } from './types.js';
import { UNIGRAM } from './unigram.js';
import { WORDPIECE } from './wordpiece.js';

export type { Model, ModelKind } from './types.js';

/** The model kinds tokenizer.json's `model.type` can name. */
export const MODELS: Readonly<Record<string, ModelKind>> = {
  BPE,
  WordPiece: WORDPIECE,
  Unigram: UNIGRAM,
};

/**
 * tokenizer.json's `model` section → its data. A section without `type` is BPE (old files);
 * WordPiece files without one have `continuing_subword_prefix` and no merges, as HF guesses.
 */
export function readModel(v: unknown, w: Where): ModelData {
  const readers = Object.fromEntries(
    Object.entries(MODELS).map(([name, kind]) => [name, (o: Obj, ww: Where) => kind.read(o, ww)]),
  );
  if (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    (v as Obj)['type'] === undefined
  ) {
    const o = v as Obj;
    const guess = Array.isArray(o['vocab'])
      ? 'Unigram'
      : o['merges'] !== undefined
        ? 'BPE'
        : 'WordPiece';
    return MODELS[guess].read(o, w);
  }
  return build(readers, 'model', v, w);
}

export function buildModel(data: ModelData, w: Where): Model {
  return MODELS[data.type].build(data, w);
}
