import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { TroupeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic.js';
import type { ModelConfig } from '../config.js';
import type { SafetensorsDtype, WriteDtype } from './dtypes.js';
import { fromHfConfig, hfConfigJson, toHfConfig, toHfGenerationConfig } from './hf-config.js';
import { fromHfStateDict, isHfBuffer, toHfStateDict } from './hf-names.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import { badCheckpoint, numel, type StateDict, type Tensor32 } from './tensor32.js';

/**
 * A Hugging Face model directory, as `save_pretrained` writes it:
 *
 *   config.json                                        (…ForCausalLM, or …ForSequenceClassification
 *                                                       with one label for a reward model)
 *   generation_config.json                             token ids generation uses (language models)
 *   model.safetensors                                  one file, or when larger than the shard limit:
 *   model-00001-of-0000N.safetensors ...               shards, filled greedily in parameter order
 *   model.safetensors.index.json                       { metadata: { total_size }, weight_map: { hfName: file } }
 */
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
export const GENERATION_CONFIG = 'generation_config.json';
/** transformers' default `max_shard_size` ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const OWN_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;

export interface SaveOptions {
  /** Storage dtype; default F32. */
  dtype?: WriteDtype;
  /** Shard when the tensors' total bytes exceed this; default 5 GB. */
  maxShardBytes?: number;
  /** Further files to write beside the model (tokenizer.json, generation_config.json, …). */
  extraFiles?: Record<string, string | Uint8Array>;
}

export interface LoadedDirectory {
  config: ModelConfig;
  state: StateDict;
  /** The stored dtype of the tensors read, or `mixed`. */
  dtype: SafetensorsDtype | 'mixed';
}

const shardName = (i: number, n: number) =>
  `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** Greedy shards in the given order; a tensor above the limit gets a shard of its own. */
function shard(hf: StateDict, bytesPer: number, max: number): StateDict[] {
  const shards: StateDict[] = [];
  let current: StateDict = new Map();
  let size = 0;
  for (const [name, t] of hf) {
    const bytes = numel(t.shape) * bytesPer;
    if (current.size > 0 && size + bytes > max) {
      shards.push(current);
      current = new Map();
      size = 0;
    }
    current.set(name, t);
    size += bytes;
  }
  if (current.size > 0 || shards.length === 0) shards.push(current);
  return shards;
}

function checkSaveOptions(o: SaveOptions): void {
  const max = o.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!Number.isSafeInteger(max) || max <= 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `saveHfDirectory: maxShardBytes must be a positive integer, got ${max}`,
    );
  }
  for (const name of Object.keys(o.extraFiles ?? {})) {
    if (
      name !== basename(name) ||
      name === '.' ||
      name === '..' ||
      name === 'config.json' ||
      OWN_FILE.test(name)
    ) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `saveHfDirectory: extraFiles name '${name}' must be a plain file name other than the model's own files`,
      );
    }
  }
}

/**
 * Write `state` (Troupe names) as a transformers-loadable directory. Every file goes through a
 * temporary name and a rename; model files of an earlier save that this one does not write are
 * removed afterwards, so the index cannot point at stale shards.
 */
export async function saveHfDirectory(
  dir: string,
  config: ModelConfig,
  state: ReadonlyMap<string, Tensor32>,
  options: SaveOptions = {},
): Promise<void> {
  checkSaveOptions(options);
  const dtype = options.dtype ?? 'F32';
  // A reward model (a score head) is a sequence classifier: transformers'
  // AutoModelForSequenceClassification loads it as it is, so it is saved without an LM head.
  const classifier = state.has('score.weight');
  const kept = classifier ? new Map([...state].filter(([n]) => n !== 'lm_head.weight')) : state;
  const hf = toHfStateDict(config, kept);
  const hfConfig = toHfConfig(config, { dtype, sequenceClassification: classifier });
  const configJson = hfConfigJson(hfConfig); // throws before any write
  await mkdir(dir, { recursive: true });
  const bytesPer = dtype === 'BF16' ? 2 : 4;
  const shards = shard(hf, bytesPer, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const written = new Set<string>();
  if (shards.length === 1) {
    await writeSafetensors(join(dir, SINGLE_FILE), shards[0], { dtype });
    written.add(SINGLE_FILE);
  } else {
    const weightMap: Record<string, string> = {};
    for (const [i, s] of shards.entries()) {
      const file = shardName(i, shards.length);
      await writeSafetensors(join(dir, file), s, { dtype });
      for (const name of s.keys()) weightMap[name] = file;
      written.add(file);
    }
    let total = 0;
    for (const t of hf.values()) total += numel(t.shape) * bytesPer;
    const sorted = Object.fromEntries(
      Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)),
    );
    const index = { metadata: { total_size: total }, weight_map: sorted };
    await writeFileAtomic(join(dir, INDEX_FILE), `${JSON.stringify(index, null, 2)}\n`);
    written.add(INDEX_FILE);
  }
  await writeFileAtomic(join(dir, 'config.json'), configJson);
  if (!classifier && !(GENERATION_CONFIG in (options.extraFiles ?? {}))) {
    const gen = `${JSON.stringify(toHfGenerationConfig(config), null, 2)}\n`;
    await writeFileAtomic(join(dir, GENERATION_CONFIG), gen);
  }
  for (const [name, data] of Object.entries(options.extraFiles ?? {}))
    await writeFileAtomic(join(dir, name), data);
  for (const stale of (await readdir(dir)).filter((f) => OWN_FILE.test(f) && !written.has(f))) {
    await unlink(join(dir, stale));
  }
}

/**
 * A checkpoint's JSON file (config.json, the index, adapter_config.json, optimizer.json), or
 * BAD_CHECKPOINT naming the file and `what` it is.
 */
export async function readCheckpointJson(path: string, what?: string): Promise<unknown> {
  const the = what === undefined ? '' : ` the ${what}`;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw badCheckpoint(
      path,
      `cannot read${the} (${(e as NodeJS.ErrnoException).code ?? e})`,
      {},
      e,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badCheckpoint(
      path,
      `${what === undefined ? '' : `the ${what} `}is not JSON (${(e as Error).message})`,
      {},
      e,
    );
  }
}

/** file → the tensor names the index puts in it, after checking the index's shape. */
export async function readIndex(path: string): Promise<Map<string, string[]>> {
  const index = (await readCheckpointJson(path)) as { weight_map?: unknown } | null;
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw badCheckpoint(path, 'has no weight_map object', { field: 'weight_map' });
  }
  const files = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== 'string' || file !== basename(file) || !file.endsWith('.safetensors')) {
      throw badCheckpoint(
        path,
        `weight_map entry must be a .safetensors file name in the directory, got ${JSON.stringify(file)}`,
        { tensor: name, field: 'weight_map' },
      );
    }
    files.set(file, [...(files.get(file) ?? []), name]);
  }
  return files;
}

/** Shards named by the index: each must exist and hold exactly the tensors the index gives it. */
async function readSharded(dir: string, config: ModelConfig) {
  const indexPath = join(dir, INDEX_FILE);
  const tensors: StateDict = new Map();
  const dtypes = new Set<SafetensorsDtype>();
  for (const [file, names] of await readIndex(indexPath)) {
    const path = join(dir, file);
    if (!existsSync(path))
      throw badCheckpoint(
        path,
        `is missing (named by ${INDEX_FILE} for ${names.length} tensors, e.g. '${names[0]}')`,
      );
    const header = await readSafetensorsHeader(path);
    const absent = names.find((n) => !header.tensors.has(n));
    if (absent !== undefined)
      throw badCheckpoint(path, `is missing, though ${INDEX_FILE} maps it to this file`, {
        tensor: absent,
      });
    const listed = new Set(names);
    const extra = [...header.tensors.keys()].find((n) => !listed.has(n));
    if (extra !== undefined)
      throw badCheckpoint(path, `is not in ${INDEX_FILE}'s weight_map`, { tensor: extra });
    const read = await readSafetensors(path, {
      only: (n) => !isHfBuffer(config, n),
      weights: true,
    });
    checkFormat(path, read.metadata.format);
    for (const [n, t] of read.tensors) tensors.set(n, t);
    for (const d of read.dtypes.values()) dtypes.add(d);
  }
  return { tensors, dtypes };
}

/** The safetensors `format` Troupe can read: PyTorch layout (mlx writes the same layout). */
export function checkFormat(path: string, format: string | undefined): void {
  if (format !== undefined && format !== 'pt' && format !== 'mlx') {
    throw new TroupeError(
      'UNSUPPORTED',
      `${path}: __metadata__.format '${format}' is not supported (only 'pt')`,
      { details: { file: path, field: '__metadata__.format' } },
    );
  }
}

/** Load a directory `saveHfDirectory` (or transformers' `save_pretrained`) wrote. The index, when present, wins. */
export async function loadHfDirectory(dir: string): Promise<LoadedDirectory> {
  const configPath = join(dir, 'config.json');
  const config = fromHfConfig(await readCheckpointJson(configPath), configPath);
  let tensors: StateDict;
  let dtypes: Set<SafetensorsDtype>;
  if (existsSync(join(dir, INDEX_FILE))) {
    ({ tensors, dtypes } = await readSharded(dir, config));
  } else if (existsSync(join(dir, SINGLE_FILE))) {
    const path = join(dir, SINGLE_FILE);
    const read = await readSafetensors(path, {
      only: (n) => !isHfBuffer(config, n),
      weights: true,
    });
    checkFormat(path, read.metadata.format);
    tensors = read.tensors;
    dtypes = new Set(read.dtypes.values());
  } else {
    const hint = existsSync(join(dir, 'pytorch_model.bin'))
      ? ' (pytorch_model.bin is not supported: convert it to safetensors)'
      : '';
    throw badCheckpoint(dir, `has neither ${SINGLE_FILE} nor ${INDEX_FILE}${hint}`);
  }
  const state = fromHfStateDict(config, tensors, { source: dir });
  const dtype = dtypes.size === 1 ? [...dtypes][0] : dtypes.size === 0 ? 'F32' : 'mixed';
  return { config, state, dtype };
}
