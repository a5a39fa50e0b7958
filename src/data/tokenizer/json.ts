import { TroupeError } from '../../errors.js';

/**
 * Reading tokenizer.json sections: typed field access that fails naming the file, the section
 * and the field, and the registry lookup every section (model, normalizer, pre_tokenizer,
 * post_processor, decoder) goes through, so an unknown type always lists what is supported.
 */

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where a section came from: the file and the section's path inside it (`decoder.decoders[2]`). */
export interface Where {
  readonly file: string;
  readonly path: string;
}

export const at = (w: Where, key: string | number): Where => ({
  file: w.file,
  path: typeof key === 'number' ? `${w.path}[${key}]` : `${w.path}.${key}`,
});

export function bad(w: Where, msg: string): TroupeError {
  return new TroupeError('BAD_CHECKPOINT', `${w.file}: ${w.path}: ${msg}`, {
    details: { file: w.file, section: w.path },
  });
}

export function unsupported(w: Where, msg: string): TroupeError {
  return new TroupeError('UNSUPPORTED', `${w.file}: ${w.path}: ${msg}`, {
    details: { file: w.file, section: w.path },
  });
}

/** Field readers: `undefined`/`null` give the default; a value of the wrong type fails. */
export function str(v: Obj, key: string, w: Where, dflt?: string): string {
  const x = v[key];
  if ((x === undefined || x === null) && dflt !== undefined) return dflt;
  if (typeof x !== 'string')
    throw bad(w, `field '${key}' must be a string, got ${JSON.stringify(x)}`);
  return x;
}

export function optStr(v: Obj, key: string, w: Where): string | null {
  const x = v[key];
  if (x === undefined || x === null) return null;
  if (typeof x !== 'string')
    throw bad(w, `field '${key}' must be a string or null, got ${JSON.stringify(x)}`);
  return x;
}

export function bool(v: Obj, key: string, w: Where, dflt: boolean): boolean {
  const x = v[key];
  if (x === undefined || x === null) return dflt;
  if (typeof x !== 'boolean')
    throw bad(w, `field '${key}' must be true or false, got ${JSON.stringify(x)}`);
  return x;
}

export function int(v: Obj, key: string, w: Where, dflt?: number): number {
  const x = v[key];
  if ((x === undefined || x === null) && dflt !== undefined) return dflt;
  if (!Number.isInteger(x))
    throw bad(w, `field '${key}' must be an integer, got ${JSON.stringify(x)}`);
  return x as number;
}

export function arr(v: Obj, key: string, w: Where): unknown[] {
  const x = v[key];
  if (!Array.isArray(x)) throw bad(w, `field '${key}' must be an array`);
  return x;
}

/** One of a fixed set of strings, or UNSUPPORTED listing them. */
export function oneOf<T extends string>(
  v: Obj,
  key: string,
  w: Where,
  allowed: readonly T[],
  dflt: T,
): T {
  const x = v[key] ?? dflt;
  if (!allowed.includes(x as T)) {
    throw unsupported(
      w,
      `${key} ${JSON.stringify(x)} is not supported (supported: ${allowed.join(', ')})`,
    );
  }
  return x as T;
}

/** A section's builder: its JSON object → the runnable piece. */
export type Builder<T> = (v: Obj, w: Where) => T;

/**
 * Builds a section through its registry: the object's `type` names the builder. An unknown type
 * fails with UNSUPPORTED naming the file, the section and the type, and listing the known ones.
 */
export function build<T>(
  registry: Readonly<Record<string, Builder<T>>>,
  section: string,
  v: unknown,
  w: Where,
): T {
  if (!isObj(v)) throw bad(w, `${section} must be an object`);
  const type = v['type'];
  const builder =
    typeof type === 'string' && Object.hasOwn(registry, type) ? registry[type] : undefined;
  if (builder === undefined) {
    const known = Object.keys(registry).sort();
    throw new TroupeError(
      'UNSUPPORTED',
      `${w.file}: ${w.path}: ${section} of type ${JSON.stringify(type)} is not supported. Supported ${section} types: ${known.join(', ')}`,
      { details: { file: w.file, section: w.path, type, supported: known } },
    );
  }
  return builder(v, w);
}

/** A `{"String": s}` or `{"Regex": r}` pattern (Split, Replace). */
export type PatternSpec = { readonly string: string } | { readonly regex: string };

export function pattern(v: Obj, key: string, w: Where): PatternSpec {
  const p = v[key];
  if (isObj(p) && typeof p['String'] === 'string') return { string: p['String'] };
  if (isObj(p) && typeof p['Regex'] === 'string') return { regex: p['Regex'] };
  throw bad(w, `field '${key}' must be {"String": …} or {"Regex": …}, got ${JSON.stringify(p)}`);
}
