import type { z } from 'zod';
import { TroupeError } from '../errors.js';

/*
 * A component's options checked at its boundary (AdamW, schedules, reward sources): the zod step
 * every layer from policy down shares, so it lives in config, below them. (Not to be confused with
 * src/cli/options.ts's parseOptions, which parses a command line.)
 */

/**
 * Parse `value` with a strict zod schema at a component's boundary; on failure throw one
 * BAD_ARGUMENT naming each offending field (`AdamW option 'betas.1': must be in [0, 1) …`).
 * The parsed result is frozen: options are validated once, then never mutated.
 */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, what: string) {
  const r = schema.safeParse(value ?? {});
  if (r.success) return Object.freeze(r.data) as Readonly<z.output<S>>;
  const issues = r.error.issues.map((i) => ({ field: i.path.join('.'), message: i.message }));
  const text = issues
    .map((i) => (i.field ? `${what} option '${i.field}': ${i.message}` : `${what}: ${i.message}`))
    .join('; ');
  throw new TroupeError('BAD_ARGUMENT', text, { details: { what, issues } });
}

/** The zod error hook for `z.strictObject`: an unknown key is refused with the known ones. */
export function refuseUnknownKeys(known: readonly string[]) {
  return (issue: { code?: string; keys?: string[] }) =>
    issue.code === 'unrecognized_keys'
      ? `unknown option${issue.keys!.length > 1 ? 's' : ''} ${issue.keys!.map((k) => `'${k}'`).join(', ')}. Known: ${known.join(', ')}.`
      : undefined;
}
