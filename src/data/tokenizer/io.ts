import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TroupeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { specFromJson } from './hf-json.js';
import { tokenizerConfigJson, tokenizerJsonText } from './hf-write.js';
import { Tokenizer } from './tokenizer.js';

/** A tokenizer from parsed tokenizer.json (and tokenizer_config.json) objects. */
export function tokenizerFromJson(
  json: unknown,
  config?: unknown,
  where = 'tokenizer.json',
): Tokenizer {
  return new Tokenizer(specFromJson(json, config, where));
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TroupeError('BAD_ARGUMENT', `Cannot read ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TroupeError('BAD_CHECKPOINT', `${file} is not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** The tokenizer.json a path names: the file itself, or `tokenizer.json` in the directory. */
export async function resolveTokenizerFile(dirOrFile: string): Promise<string> {
  const s = await stat(dirOrFile).catch(() => undefined);
  if (s === undefined)
    throw new TroupeError('BAD_ARGUMENT', `No such file or directory: ${dirOrFile}`);
  if (!s.isDirectory()) return dirOrFile;
  const file = join(dirOrFile, 'tokenizer.json');
  if (!(await exists(file))) {
    throw new TroupeError('BAD_ARGUMENT', `${dirOrFile} holds no tokenizer.json`);
  }
  return file;
}

/**
 * Loads a Hugging Face tokenizer.json (a file, or a directory holding one), with the
 * tokenizer_config.json beside it when there is one (special token names, chat template,
 * add_bos_token).
 */
export async function loadTokenizer(dirOrFile: string): Promise<Tokenizer> {
  const file = await resolveTokenizerFile(dirOrFile);
  const configFile = join(dirname(file), 'tokenizer_config.json');
  const config = (await exists(configFile)) ? await readJson(configFile) : undefined;
  return tokenizerFromJson(await readJson(file), config, file);
}

/**
 * Writes `dir/tokenizer.json` and `dir/tokenizer_config.json`, each atomically (src/util/atomic),
 * so a crash never leaves a half-written file under the real name.
 */
export async function saveTokenizer(dir: string, tokenizer: Tokenizer): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['tokenizer.json', tokenizerJsonText(tokenizer.spec)],
    ['tokenizer_config.json', `${JSON.stringify(tokenizerConfigJson(tokenizer.spec), null, 2)}\n`],
  ];
  for (const [name, text] of files) await writeFileAtomic(join(dir, name), text);
}
