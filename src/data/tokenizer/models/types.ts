import { bad, isObj, type Obj, type Where } from '../json.js';
import type { ModelData } from '../spec.js';

/** A tokenizer model at run time: one pre-token in, its ids out. */
export interface Model {
  /** One more than the largest id. */
  readonly size: number;
  /** Appends the ids of one pre-token to `out`. */
  tokenize(piece: string, out: number[]): void;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

/** One kind of model (BPE, WordPiece, Unigram): how to read, run and write it. */
export interface ModelKind {
  /** tokenizer.json's `model` section → its data (tables typed, the rest kept as options). */
  read(v: Obj, w: Where): ModelData;
  /** The runnable model; its options are validated here. */
  build(data: ModelData, w: Where): Model;
  /** The `model` section's table fields as JSON text (`    "vocab": {…}`), one string each. */
  writeTables(data: ModelData): string[];
}

/** Token → id from the section's `vocab` object (every value an integer id). */
export function readVocab(v: Obj, w: Where): Map<string, number> {
  const raw = v['vocab'];
  if (!isObj(raw)) throw bad(w, 'model.vocab must be an object of token → id');
  const vocab = new Map<string, number>();
  for (const tok in raw) {
    const id = raw[tok];
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw bad(w, `model.vocab[${JSON.stringify(tok)}] = ${JSON.stringify(id)} is not an id`);
    }
    vocab.set(tok, id as number);
  }
  return vocab;
}

/** `"vocab": {…}` in id order (a JS object would move integer-like keys such as "0" first). */
export function vocabField(vocab: ReadonlyMap<string, number>): string {
  const sorted = [...vocab].sort((a, b) => a[1] - b[1]);
  const lines = sorted.map(([tok, id]) => `      ${JSON.stringify(tok)}: ${id}`);
  return `    "vocab": {\n${lines.join(',\n')}\n    }`;
}

/** The inverse table of a vocab: id → token, and the size (largest id + 1). */
export function invert(vocab: ReadonlyMap<string, number>): { tokens: string[]; size: number } {
  const tokens: string[] = [];
  let size = 0;
  for (const [tok, id] of vocab) {
    tokens[id] = tok;
    if (id >= size) size = id + 1;
  }
  return { tokens, size };
}
