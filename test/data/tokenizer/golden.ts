import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  loadTokenizer,
  type Tokenizer,
  tokenizerFromJson,
} from '../../../src/data/tokenizer/index.js';
import { gpt2, packageFile } from './fixtures.js';

/**
 * The golden outputs of Hugging Face `tokenizers`, written by
 * scripts/fixtures/tokenizer_fixtures.py into test/fixtures/tokenizers/.
 */
export const GOLDEN_DIR = join(import.meta.dirname, '../../fixtures/tokenizers');

/** Where a golden tokenizer's file is: npm's, one built by the script, or GPT-2's own files. */
type Source =
  | { readonly package: string; readonly replace?: Readonly<Record<string, unknown>> }
  | { readonly file: string; readonly replace?: Readonly<Record<string, unknown>> }
  | { readonly gpt2Files: string };

export interface Golden {
  readonly name: string;
  readonly kind: string;
  readonly source: Source;
  readonly tokenizers: string;
  /** Lines with added tokens inside text; they follow the corpus lines. */
  readonly specialTexts: readonly string[];
  /** ids[i]: corpus line i (then special line i − corpus.length), no special tokens added. */
  readonly ids: readonly (readonly number[])[];
  /** decode(ids[i]) with special tokens kept. */
  readonly decoded: readonly string[];
  /** The first `texts` corpus lines and every special line, encoded with special tokens. */
  readonly withSpecial: { readonly texts: number; readonly ids: readonly (readonly number[])[] };
  /** decode(ids of special line i, skip_special_tokens=True). */
  readonly decodedSkip: readonly string[];
  /** [a, b, encode(a, b) with special tokens]. */
  readonly pairs: readonly (readonly [string, string, readonly number[]])[];
}

export const goldenCorpus = (): string[] =>
  JSON.parse(readFileSync(join(GOLDEN_DIR, 'corpus.json'), 'utf8'));

export function goldenNames(): string[] {
  return readdirSync(join(GOLDEN_DIR, 'expected'))
    .filter((f) => f.endsWith('.json.gz'))
    .map((f) => f.slice(0, -'.json.gz'.length))
    .sort();
}

export function readGolden(name: string): Golden {
  const gz = readFileSync(join(GOLDEN_DIR, 'expected', `${name}.json.gz`));
  return JSON.parse(gunzipSync(gz).toString('utf8'));
}

/** The tokenizer a golden file was made with, loaded by Troupe. */
export async function loadGoldenTokenizer(source: Source): Promise<Tokenizer> {
  if ('gpt2Files' in source) return gpt2();
  const file =
    'file' in source
      ? join(GOLDEN_DIR, source.file)
      : packageFile(source.package, 'models/tokenizer.json');
  if (source.replace === undefined) return loadTokenizer(file);
  const json = { ...JSON.parse(readFileSync(file, 'utf8')), ...source.replace };
  return tokenizerFromJson(
    json,
    undefined,
    `${file} (with ${Object.keys(source.replace).join(', ')} replaced)`,
  );
}
