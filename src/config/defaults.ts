import { Document, isMap, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { algorithmEntry } from '../algorithms/registry.js';
import { formatIssues } from './load.js';

/** A field of a config schema: its dotted path, and its default or that it must be given. */
export interface ConfigField {
  readonly path: string;
  /** The value taken when the field is absent; undefined for optional and required fields. */
  readonly default?: unknown;
  readonly required: boolean;
  /** Inside a section that is itself optional (`model.lora`): off unless the config has it. */
  readonly inOptional: boolean;
}

interface Def {
  readonly type: string;
  readonly shape?: Record<string, z.ZodType>;
  readonly innerType?: z.ZodType;
  readonly defaultValue?: unknown;
  readonly values?: readonly unknown[];
}

const defOf = (t: z.ZodType) => (t as unknown as { _zod: { def: Def } })._zod.def;
const shapeOf = (t: z.ZodType) => {
  const d = defOf(t);
  return d.type === 'object' ? d.shape : undefined;
};

/**
 * Every leaf field of a schema, read from the schema itself (the one the loader validates
 * with), so help texts and `config show` cannot drift from what is accepted. Sections with a
 * default of their own (`optim`, `rollout`) list their fields with those defaults.
 */
export function configFields(schema: z.ZodType): ConfigField[] {
  const out: ConfigField[] = [];
  const walk = (
    t: z.ZodType,
    path: string,
    o: { required: boolean; inOptional: boolean; given?: unknown },
  ): void => {
    const d = defOf(t);
    const { inOptional, given } = o;
    if (d.type === 'default' || d.type === 'prefault') {
      const value = typeof d.defaultValue === 'function' ? d.defaultValue() : d.defaultValue;
      const inner = d.innerType!;
      // A section default: its fields, each with its part of the default.
      if (shapeOf(inner)) {
        walk(inner, path, {
          required: false,
          inOptional,
          given: d.type === 'default' ? value : {},
        });
        return;
      }
      out.push({ path, default: given === undefined ? value : given, required: false, inOptional });
      return;
    }
    if (d.type === 'optional') {
      const inner = d.innerType!;
      if (shapeOf(inner)) {
        walk(inner, path, { required: true, inOptional: true, given });
        return;
      }
      out.push({
        path,
        required: false,
        inOptional,
        ...(given === undefined ? {} : { default: given }),
      });
      return;
    }
    const shape = shapeOf(t);
    if (shape) {
      for (const [k, v] of Object.entries(shape)) {
        const sub =
          given && typeof given === 'object' ? (given as Record<string, unknown>)[k] : undefined;
        walk(v, path ? `${path}.${k}` : k, { ...o, given: sub });
      }
      return;
    }
    if (d.type === 'literal') {
      out.push({ path, default: d.values?.[0], required: false, inOptional });
      return;
    }
    out.push({
      path,
      required: o.required && given === undefined,
      inOptional,
      ...(given === undefined ? {} : { default: given }),
    });
  };
  walk(schema, '', { required: true, inOptional: false });
  return out;
}

/** The config of `algorithm` with every default filled in and each required field null. */
export function defaultConfig(algorithm: string): {
  config: Record<string, unknown>;
  /** What a config must still say, as the validator words it (`output: required`, …). */
  required: string[];
} {
  const { schema } = algorithmEntry(algorithm);
  const config: Record<string, unknown> = {};
  const skeleton: Record<string, unknown> = {};
  const set = (obj: Record<string, unknown>, path: string, value: unknown) => {
    const keys = path.split('.');
    let node = obj;
    for (const k of keys.slice(0, -1)) {
      node[k] ??= {};
      node = node[k] as Record<string, unknown>;
    }
    node[keys[keys.length - 1]] = value;
  };
  for (const f of configFields(schema)) {
    if (f.inOptional) continue;
    if (f.default !== undefined) {
      set(config, f.path, f.default);
      set(skeleton, f.path, f.default);
    } else if (f.required) set(config, f.path, null);
  }
  // The validator's own word on what is missing, cross-field rules included (model.path|init).
  const r = schema.safeParse(skeleton);
  const issues = r.success ? [] : r.error.issues;
  const required = formatIssues(
    issues.map((i) =>
      i.code === 'invalid_type' ? { ...i, message: `required (${i.expected})` } : i,
    ) as typeof issues,
  );
  return { config, required };
}

/** `troupe config show --algorithm NAME` without a config: the defaults as commented YAML. */
export function defaultConfigYaml(algorithm: string): string {
  const { config, required } = defaultConfig(algorithm);
  const doc = new Document(config);
  doc.commentBefore = [
    ` The defaults of \`troupe ${algorithm}\`. A config must also give:`,
    ...required.map((r) => `   ${r}`),
  ].join('\n');
  const mark = (node: unknown) => {
    if (!isMap(node)) return;
    for (const pair of (node as YAMLMap).items) {
      const v = pair.value as { comment?: string; value?: unknown } | null;
      if (isMap(v)) mark(v);
      else if (v && v.value === null) v.comment = ' required';
    }
  };
  mark(doc.contents);
  return doc.toString();
}
