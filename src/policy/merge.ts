import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TroupeError } from '../errors.js';
import type { WriteDtype } from './checkpoint/dtypes.js';
import { loadModel, saveModel } from './io.js';
import { type ModelSource, resolveModelSource } from './source.js';

/**
 * Files copied beside a merged model when its source has them: the tokenizer (with the chat
 * template, in tokenizer_config.json or chat_template.jinja) and the generation defaults.
 */
export const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'generation_config.json',
] as const;

export interface MergeOptions {
  /** Storage dtype of the merged weights; default F32 (what the adapter was merged in). */
  readonly dtype?: WriteDtype;
}

export interface MergeResult {
  /** What the path resolved to: the base and the adapters merged into it. */
  readonly source: ModelSource;
  /** The directory written (absolute). */
  readonly output: string;
  /** The files copied beside the model, with the directory each came from. */
  readonly copied: readonly { readonly file: string; readonly from: string }[];
}

/**
 * Write the model a path leads to (a LoRA checkpoint: its base with the adapter merged in, PEFT's
 * `merge_and_unload`; a run directory: its best or latest checkpoint) as a plain Hugging Face
 * directory that transformers' AutoModelForCausalLM and Troupe load: config.json,
 * model.safetensors and the tokenizer files the source has. `output` must be new or empty.
 */
export async function mergeToDirectory(
  path: string | ModelSource,
  output: string,
  opts: MergeOptions = {},
): Promise<MergeResult> {
  const source = typeof path === 'string' ? await resolveModelSource(path) : path;
  const out = resolve(output);
  const inputs = [source.dir, source.base, ...source.adapters];
  if (inputs.includes(out)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `merge: --output ${out} is the model being merged; write to a new directory`,
      { details: { output: out } },
    );
  }
  if (existsSync(out) && (await readdir(out)).length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `merge: --output ${out} is not empty; write to a new or empty directory`,
      { details: { output: out } },
    );
  }
  // Tokenizer files from where the tokenizer is; generation defaults from the model or its base.
  const from = [source.tokenizerDir, source.dir, ...[...source.adapters].reverse(), source.base];
  const copied: { file: string; from: string }[] = [];
  const extraFiles: Record<string, Uint8Array> = {};
  for (const file of COPIED_FILES) {
    const dir = from.find((d): d is string => d !== undefined && existsSync(join(d, file)));
    if (!dir) continue;
    extraFiles[file] = await readFile(join(dir, file));
    copied.push({ file, from: dir });
  }
  const model = await loadModel(source);
  try {
    await saveModel(out, model, { dtype: opts.dtype, extraFiles });
  } finally {
    model.dispose();
  }
  return { source, output: out, copied };
}
