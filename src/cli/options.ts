import { type ParseArgsConfig, parseArgs } from 'node:util';
import { splitOverrides } from '../config/load.js';
import { TroupeError } from '../errors.js';

/**
 * One option of a command: what `parseArgs` reads and what `--help` says, from one record, so
 * that the two cannot drift apart.
 */
export interface OptionSpec {
  /** The long name, without `--`. */
  readonly name: string;
  /** A one-letter alias (`-h`). */
  readonly short?: string;
  readonly type: 'string' | 'boolean';
  /** The value's placeholder in the usage line (`N`, `DIR`). */
  readonly value?: string;
  /** The value taken when the option is absent (string options). */
  readonly default?: string;
  /** Refused when absent, with the usage line. */
  readonly required?: boolean;
  /** When it applies, if not always (`--kind wordpiece`): said in the help, checked by the command. */
  readonly only?: string;
  readonly help: string;
}

/** A command (or sub-command) as data: its usage line and help text are made from it. */
export interface CommandSpec {
  /** As typed after `troupe`: `generate`, `tokenizer train`. */
  readonly name: string;
  readonly summary: string;
  readonly options: readonly OptionSpec[];
  /** Shown after the options in the usage line (`[--section.key value …]`). */
  readonly rest?: string;
  /** Paragraphs printed after the options in `--help`. */
  readonly notes?: readonly string[];
}

/** Every command takes `--help` / `-h`. */
export const HELP: OptionSpec = {
  name: 'help',
  short: 'h',
  type: 'boolean',
  help: 'print this help and exit',
};

const flag = (o: OptionSpec) => `--${o.name}${o.value === undefined ? '' : ` ${o.value}`}`;

/** `troupe generate --model DIR --prompt TEXT [--max-new-tokens N] …` */
export function usageOf(spec: CommandSpec): string {
  const parts = spec.options
    .filter((o) => o.name !== HELP.name)
    .map((o) => (o.required ? flag(o) : `[${flag(o)}]`));
  return ['troupe', spec.name, ...parts, ...(spec.rest ? [spec.rest] : [])].join(' ');
}

/** The `--help` text: usage, summary, one line per option (with its default), notes. */
export function helpOf(spec: CommandSpec): string {
  const options = [...spec.options.filter((o) => o.name !== HELP.name), HELP];
  const names = options.map((o) => `${o.short ? `-${o.short}, ` : '    '}${flag(o)}`);
  const width = Math.max(...names.map((n) => n.length));
  const lines = options.map((o, i) => {
    const notes = [
      o.required ? 'required' : undefined,
      o.default === undefined ? undefined : `default ${o.default}`,
      o.only === undefined ? undefined : `${o.only} only`,
    ].filter((n) => n !== undefined);
    return `  ${names[i].padEnd(width)}  ${o.help}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
  });
  return [
    `usage: ${usageOf(spec)}`,
    '',
    spec.summary,
    '',
    'Options:',
    ...lines,
    ...(spec.notes ?? []).flatMap((n) => ['', n]),
    '',
  ].join('\n');
}

export type OptionValues = Record<string, string | boolean | undefined>;

/**
 * Parse `args` by the command's table. Returns undefined when `--help` / `-h` was given (the
 * caller prints `helpOf(spec)` and exits 0); an unknown option, a missing value or a missing
 * required option fails with BAD_ARGUMENT and the usage line.
 */
export function parseOptions(
  spec: CommandSpec,
  args: readonly string[],
  o: { readonly positionals?: boolean } = {},
): { values: OptionValues; positionals: string[] } | undefined {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const opt of [...spec.options, HELP]) {
    options[opt.name] = {
      type: opt.type,
      ...(opt.short ? { short: opt.short } : {}),
      ...(opt.default === undefined ? {} : { default: opt.default }),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: o.positionals ?? false,
    });
  } catch (e) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${(e as Error).message}. Usage: ${usageOf(spec)} (troupe ${spec.name} --help lists the options)`,
      { cause: e },
    );
  }
  const values = parsed.values as OptionValues;
  if (values[HELP.name] === true) return undefined;
  const missing = spec.options.filter((x) => x.required && values[x.name] === undefined);
  if (missing.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${missing.map((x) => `--${x.name}`).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required. Usage: ${usageOf(spec)}`,
      { details: { missing: missing.map((x) => x.name) } },
    );
  }
  return { values, positionals: parsed.positionals };
}

/**
 * A command that takes config overrides (`troupe sft --config x.yaml --train.steps 10`): its
 * own flags parsed by `parseOptions`, every other `--key value` pair an override. Undefined
 * when `--help` was given: its help is then printed, and the command exits 0.
 */
export function parseCommand(
  spec: CommandSpec,
  args: readonly string[],
  o: { readonly positionals?: boolean } = {},
): { values: OptionValues; positionals: string[]; overrides: [string, string][] } | undefined {
  const flags = new Set([...spec.options, HELP].map((x) => x.name));
  const { rest, overrides } = splitOverrides(args, flags);
  const parsed = parseOptions(spec, rest, o);
  if (!parsed) {
    process.stdout.write(helpOf(spec));
    return undefined;
  }
  return { ...parsed, overrides };
}

/** True when `args` asks for help (`--help` or `-h` before any `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** A number option, refused by name when it is not one. */
export function numberOption(values: OptionValues, name: string): number {
  const v = Number(values[name]);
  if (values[name] === undefined || values[name] === '' || !Number.isFinite(v)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--${name} must be a number, got '${String(values[name])}'`,
      { details: { option: name } },
    );
  }
  return v;
}

/** An integer option ≥ `min`, refused by name otherwise. */
export function intOption(values: OptionValues, name: string, min: number): number {
  const n = Number(values[name]);
  if (values[name] === undefined || !Number.isInteger(n) || n < min) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--${name} must be an integer ≥ ${min}, got '${String(values[name])}'`,
      { details: { option: name } },
    );
  }
  return n;
}
