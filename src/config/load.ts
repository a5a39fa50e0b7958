import { readFile } from 'node:fs/promises';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { algorithmEntry } from '../algorithms/registry.js';
import { TroupeError } from '../errors.js';

export interface LoadOptions {
  /** A YAML file with the run config. */
  readonly file?: string;
  /** Or the config as an object (the library API). */
  readonly object?: Record<string, unknown>;
  /** `--section.key value` pairs from the command line, applied over the file. */
  readonly overrides?: readonly (readonly [string, string])[];
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** Set `a.b.c` in `obj` to `value` (a YAML scalar or flow collection: `3e-4`, `true`, `[q, v]`). */
export function applyOverride(obj: Record<string, unknown>, path: string, raw: string): void {
  const keys = path.split('.');
  if (keys.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype')) {
    throw new TroupeError('BAD_ARGUMENT', `Override --${path}: not a config path`);
  }
  let node = obj;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (next === undefined) node[k] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new TroupeError('BAD_ARGUMENT', `Override --${path}: '${k}' is a value, not a section`);
    }
    node = node[k] as Record<string, unknown>;
  }
  let value: unknown;
  try {
    value = parseYaml(raw);
  } catch {
    value = raw;
  }
  node[keys[keys.length - 1]] = value;
}

/** Zod issues as lines that name the field: `train.batchSize: must be …`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    const path = i.path.join('.') || '(root)';
    const keys = (i as { keys?: string[] }).keys;
    const msg =
      i.code === 'unrecognized_keys' && keys
        ? `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')} (check the spelling; \`troupe config show\` lists every key)`
        : i.message;
    return `${path}: ${msg}`;
  });
}

/**
 * The mapping of sections a YAML config file (or a copy of a config object) holds, before any
 * override or validation, and the name its errors go by (the file, or `(config object)`).
 * `noun` says what it is in messages: `config`, `sweep config`.
 */
export async function readConfigMapping(
  o: Pick<LoadOptions, 'file' | 'object'>,
  noun = 'config',
): Promise<{ readonly obj: Record<string, unknown>; readonly source: string }> {
  let raw: unknown = o.object ? structuredClone(o.object) : {};
  const source = o.file ?? '(config object)';
  if (o.file) {
    let text: string;
    try {
      text = await readFile(o.file, 'utf8');
    } catch (e) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Cannot read ${noun} ${o.file}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (e) {
      throw new TroupeError('BAD_ARGUMENT', `${o.file}: not valid YAML: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TroupeError('BAD_ARGUMENT', `${source}: the ${noun} must be a mapping of sections`);
  }
  return { obj: raw as Record<string, unknown>, source };
}

/**
 * Load, override and validate a run config for `algorithm`, with every default filled in.
 * Errors name the file and the field and say how to fix it.
 */
export async function loadConfig<T = unknown>(algorithm: string, o: LoadOptions): Promise<T> {
  const { schema } = algorithmEntry(algorithm);
  const { obj, source } = await readConfigMapping(o);
  if (obj['algorithm'] !== undefined && obj['algorithm'] !== algorithm) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: this config is for '${String(obj['algorithm'])}', not '${algorithm}': run \`troupe ${String(obj['algorithm'])}\` or change 'algorithm'`,
    );
  }
  obj['algorithm'] = algorithm;
  for (const [path, value] of o.overrides ?? []) applyOverride(obj, path, value);
  const r = schema.safeParse(obj);
  if (!r.success) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${source}: invalid config:\n  ${formatIssues(r.error.issues).join('\n  ')}`,
      {
        details: {
          file: source,
          issues: r.error.issues.map((i) => ({ path: i.path, message: i.message })),
        },
      },
    );
  }
  return deepFreeze(r.data) as T;
}

/** The resolved config as YAML (what `troupe config show` prints and a run directory keeps). */
export function configToYaml(config: unknown): string {
  return stringifyYaml(config);
}

/**
 * Split CLI arguments into known flags and overrides. A flag listed in `flags` keeps its meaning
 * (`--config`, `--resume`); every other `--key value` (`--output runs/x`, `--train.steps 100`)
 * overrides that config path, and an unknown path then fails validation with its name.
 */
export function splitOverrides(
  args: readonly string[],
  flags: ReadonlySet<string>,
): { rest: string[]; overrides: [string, string][] } {
  const rest: string[] = [];
  const overrides: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--([a-zA-Z][\w.]*)(?:=(.*))?$/.exec(a);
    if (!m || flags.has(m[1])) {
      rest.push(a);
      continue;
    }
    if (m[2] !== undefined) overrides.push([m[1], m[2]]);
    else {
      if (i + 1 >= args.length)
        throw new TroupeError('BAD_ARGUMENT', `Override ${a} needs a value`);
      overrides.push([m[1], args[++i]]);
    }
  }
  return { rest, overrides };
}
