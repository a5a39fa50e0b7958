import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { TroupeError } from '../errors.js';
import {
  BEST_FILE,
  type CheckpointMetric,
  Checkpoints,
  LATEST_FILE,
  stepDirName,
} from '../train/checkpoints.js';
import { INDEX_FILE, SINGLE_FILE } from './checkpoint/directory.js';

/**
 * Where a model path leads. Every place that takes a model path (`model.path`, `critic.path`, a
 * `model` reward source, `troupe generate | chat | logprobs | merge`, `loadModel`) resolves it
 * here, so that all of them read the same model from the same path:
 *
 *   a run directory (what a trainer writes: checkpoints/ with latest.json, best.json)
 *       → its best checkpoint (best.json), else its latest (latest.json); its checkpoints/
 *         folder is taken the same way
 *   a directory with adapter_model.safetensors (a LoRA checkpoint, PEFT's layout)
 *       → its base model with the adapter merged into the weights. The base is the model in the
 *         same directory when it holds one (config.json + weights: what Troupe's LoRA checkpoints
 *         hold, and what transformers loads for a "local model with an embedded adapter"), else
 *         adapter_config.json's `base_model_name_or_path` (PEFT's field), a directory relative
 *         to the adapter's own directory or, failing that, to the working directory. A base
 *         that is itself a LoRA checkpoint or a run directory is resolved the same way.
 *   a Hugging Face model directory → itself
 */
export interface ModelSource {
  /** The path as given. */
  readonly path: string;
  /** The model directory it leads to (absolute): the run's checkpoint, or the path itself. */
  readonly dir: string;
  /** The directory whose config.json and weights are the base (absolute). */
  readonly base: string;
  /** PEFT adapter directories merged into the base, in order (absolute). */
  readonly adapters: readonly string[];
  /** When the path was a run directory: the checkpoint taken and why. */
  readonly checkpoint?: RunCheckpoint;
  /** Where the tokenizer (tokenizer.json) is: the model directory, else the base's; absent if none. */
  readonly tokenizerDir?: string;
}

/** The checkpoint a run directory resolved to. */
export interface RunCheckpoint {
  /** The run directory (absolute). */
  readonly run: string;
  readonly step: number;
  /** `best`: best.json's checkpoint; `latest`: latest.json's, the run having no best. */
  readonly pick: 'best' | 'latest';
  /** The eval metric best.json ranks by, for `best`. */
  readonly metric?: CheckpointMetric;
}

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const CHECKPOINTS_SUBDIR = 'checkpoints';

/** How deep a chain of adapters on adapters (or runs on runs) may go before it is a cycle. */
const MAX_DEPTH = 16;

export interface ResolveOptions {
  /** The config field or CLI flag the path came from, for error messages (`model.path`, `--model`). */
  readonly field?: string;
  /**
   * When the path is a run directory and its checkpoint has this subdirectory, take that (a PPO
   * run's `critic/` for `critic.path`).
   */
  readonly runSubdir?: string;
}

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
const isFile = (p: string) => statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
const hasWeights = (dir: string) => isFile(join(dir, SINGLE_FILE)) || isFile(join(dir, INDEX_FILE));

function bad(
  code: 'BAD_ARGUMENT' | 'BAD_CHECKPOINT',
  field: string,
  message: string,
  details: Record<string, unknown>,
): TroupeError {
  return new TroupeError(code, `${field}: ${message}`, { details: { field, ...details } });
}

/** The checkpoints/ folder of a run directory (or the folder itself), when `dir` is one. */
function checkpointsRoot(dir: string): string | undefined {
  const sub = join(dir, CHECKPOINTS_SUBDIR);
  if (isDir(sub) && (isFile(join(sub, LATEST_FILE)) || isFile(join(sub, BEST_FILE)))) return sub;
  if (isFile(join(dir, LATEST_FILE)) || isFile(join(dir, BEST_FILE))) return dir;
  // A run that has not committed a checkpoint yet: say so rather than "no config.json".
  if (isDir(sub) && isFile(join(dir, 'config.json')) && !hasWeights(dir)) return sub;
  return undefined;
}

/** A run's best checkpoint, else its latest. */
async function pickCheckpoint(
  root: string,
  field: string,
): Promise<RunCheckpoint & { dir: string }> {
  const checkpoints = new Checkpoints(root);
  const run = basename(root) === CHECKPOINTS_SUBDIR ? dirname(root) : root;
  const best = await checkpoints.best();
  if (best) return { run, step: best.step, dir: best.dir, pick: 'best', metric: best.metric };
  const latest = await checkpoints.latest();
  if (latest) return { run, step: latest.step, dir: latest.dir, pick: 'latest' };
  throw bad(
    'BAD_ARGUMENT',
    field,
    `${run} is a run directory with no committed checkpoint yet (no ${LATEST_FILE} in ${root}); ` +
      'wait for its first save, or name a checkpoint directory',
    { path: run },
  );
}

async function readAdapterConfig(file: string, field: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw bad(
      'BAD_CHECKPOINT',
      field,
      `${file}: cannot read the adapter config (${(e as Error).message})`,
      {
        file,
      },
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw bad('BAD_CHECKPOINT', field, `${file}: not a JSON object`, { file });
  }
  return json as Record<string, unknown>;
}

/**
 * The base directory named by an adapter-only directory's `base_model_name_or_path`: relative
 * to the adapter directory first (a run directory moved as a whole keeps working), then to the
 * working directory (where PEFT and transformers look).
 */
function baseFromConfig(
  adapterDir: string,
  file: string,
  cfg: Record<string, unknown>,
  field: string,
): string {
  const named = cfg['base_model_name_or_path'];
  if (typeof named !== 'string' || named === '') {
    throw bad(
      'BAD_CHECKPOINT',
      field,
      `${file}: the adapter's base model is unknown: ${adapterDir} holds no base model ` +
        `(config.json and ${SINGLE_FILE}) and 'base_model_name_or_path' is ${JSON.stringify(named ?? null)}. ` +
        'Set it to the base model directory, or copy the base model into the adapter directory.',
      { file, path: adapterDir },
    );
  }
  const tried = isAbsolute(named) ? [named] : [resolve(adapterDir, named), resolve(named)];
  const found = tried.find(isDir);
  if (found) return found;
  const hub = !isAbsolute(named) && /^[\w.-]+\/[\w.-]+$/.test(named) && !named.startsWith('.');
  throw bad(
    'BAD_CHECKPOINT',
    field,
    `${file}: base model '${named}' not found (looked in ${[...new Set(tried)].join(', ')}).` +
      (hub
        ? ' It looks like a Hugging Face Hub id: Troupe reads local directories only; download the model and set base_model_name_or_path to its directory.'
        : ' Set base_model_name_or_path to the base model directory.'),
    { file, path: adapterDir, base: named },
  );
}

async function resolveDir(
  path: string,
  field: string,
  seen: readonly string[],
  runSubdir?: string,
): Promise<Omit<ModelSource, 'path' | 'tokenizerDir'>> {
  const abs = resolve(path);
  if (seen.includes(abs) || seen.length >= MAX_DEPTH) {
    throw bad('BAD_CHECKPOINT', field, `model path cycle: ${[...seen, abs].join(' → ')}`, {
      path: abs,
    });
  }
  if (!isDir(abs)) {
    throw bad(
      'BAD_ARGUMENT',
      field,
      existsSync(abs) ? `${abs} is a file; give the model's directory` : `${abs} does not exist`,
      { path: abs },
    );
  }
  const root = checkpointsRoot(abs);
  if (root) {
    const ck = await pickCheckpoint(root, field);
    const sub = runSubdir === undefined ? undefined : join(ck.dir, runSubdir);
    const inner = await resolveDir(sub && isDir(sub) ? sub : ck.dir, field, [...seen, abs]);
    const { dir: _dir, ...checkpoint } = ck;
    return { ...inner, checkpoint: inner.checkpoint ?? checkpoint };
  }
  const adapterConfig = join(abs, ADAPTER_CONFIG_FILE);
  const adapterWeights = join(abs, ADAPTER_WEIGHTS_FILE);
  if (isFile(adapterWeights) !== isFile(adapterConfig)) {
    const [has, lacks] = isFile(adapterWeights)
      ? [ADAPTER_WEIGHTS_FILE, ADAPTER_CONFIG_FILE]
      : [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];
    const bin = isFile(join(abs, 'adapter_model.bin'))
      ? ' (adapter_model.bin is not supported: save the adapter with safetensors)'
      : '';
    throw bad('BAD_CHECKPOINT', field, `${abs} has ${has} but no ${lacks}${bin}`, {
      path: abs,
      file: join(abs, lacks),
    });
  }
  if (!isFile(adapterWeights)) return { dir: abs, base: abs, adapters: [] };
  if (isFile(join(abs, 'config.json'))) return { dir: abs, base: abs, adapters: [abs] };
  const cfg = await readAdapterConfig(adapterConfig, field);
  const below = await resolveDir(baseFromConfig(abs, adapterConfig, cfg, field), field, [
    ...seen,
    abs,
  ]);
  return { dir: abs, base: below.base, adapters: [...below.adapters, abs] };
}

/** Resolve a model path (see `ModelSource`); nothing is loaded. */
export async function resolveModelSource(
  path: string,
  opts: ResolveOptions = {},
): Promise<ModelSource> {
  const field = opts.field ?? 'model path';
  if (typeof path !== 'string' || path === '') {
    throw bad('BAD_ARGUMENT', field, 'must be a model directory, got an empty path', { path });
  }
  const r = await resolveDir(path, field, [], opts.runSubdir);
  const tokenizerDir = [r.dir, ...[...r.adapters].reverse(), r.base].find((d) =>
    isFile(join(d, 'tokenizer.json')),
  );
  return Object.freeze({ path, ...r, ...(tokenizerDir ? { tokenizerDir } : {}) });
}

/** One line saying what a path resolved to (for logs). */
export function describeModelSource(s: ModelSource): string {
  const rel = (p: string) => {
    const r = relative(process.cwd(), p);
    return r === '' ? '.' : r.startsWith('..') ? p : r;
  };
  const parts: string[] = [];
  if (s.checkpoint) {
    const c = s.checkpoint;
    const why =
      c.pick === 'best'
        ? `its best checkpoint, ${stepDirName(c.step)} (${c.metric!.name} ${c.metric!.value}, ${c.metric!.mode === 'min' ? 'lowest' : 'highest'})`
        : `its latest checkpoint, ${stepDirName(c.step)} (the run has no ${BEST_FILE}: no eval ranked its checkpoints)`;
    parts.push(`run directory ${rel(c.run)}: ${why}`);
  }
  if (s.adapters.length === 0) parts.push(`model ${rel(s.dir)}`);
  else {
    const embedded = s.adapters.length === 1 && s.adapters[0] === s.base;
    parts.push(
      `LoRA checkpoint ${rel(s.dir)}: base ${embedded ? '(in the same directory)' : rel(s.base)} ` +
        `with ${s.adapters.length === 1 ? 'its adapter' : `${s.adapters.length} adapters (${s.adapters.map(rel).join(' → ')})`} merged into the weights`,
    );
  }
  return parts.join('; ');
}
