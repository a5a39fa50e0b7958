import { TroupeError } from '../../errors.js';
import { type ChatMessage, conversationProblem, kind } from '../messages.js';
import { extractPrompt } from './extract-prompt.js';
import { type DataLocation, dataError } from './location.js';

/**
 * The column conventions of TRL's datasets, one example kind each. A prompt, completion, chosen
 * or rejected value is either a string ("standard") or a list of messages ("conversational");
 * within one row all of them are the same, recorded by `conversational`.
 *
 *   text        {text}                                 pretraining / plain LM
 *   messages    {messages}                             chat SFT
 *   completion  {prompt, completion}                   SFT on the completion only
 *   preference  {prompt?, chosen, rejected}            reward modelling, DPO (implicit prompt when absent)
 *   prompt      {prompt, ...extra}                     RL prompts; extra columns go to reward functions
 *
 * (Past 300 lines: the five conventions' types, their detection and one row reader that checks
 * every column of each with the file and line in its errors, kept side by side so that a column
 * rule is read once for all kinds.)
 */
export type DatasetFormat = 'text' | 'messages' | 'completion' | 'preference' | 'prompt';

export const DATASET_FORMATS: readonly DatasetFormat[] = [
  'text',
  'messages',
  'completion',
  'preference',
  'prompt',
];

/** What each convention expects, as error messages quote it. */
const CONVENTION: Readonly<Record<DatasetFormat, string>> = {
  text: '{"text": string}',
  messages: '{"messages": [{"role", "content"}, ...]}',
  completion: '{"prompt": string or messages, "completion": string or messages}',
  preference:
    '{"prompt"?: string or messages, "chosen": string or messages, "rejected": string or messages}',
  prompt: '{"prompt": string or messages, ...extra columns}',
};

interface ExampleBase {
  /** Columns the convention does not use, passed through (labels, answers for reward functions). */
  readonly extra: Readonly<Record<string, unknown>>;
  /** Where the row came from, when it came from a file. */
  readonly where?: DataLocation;
}

export interface TextExample extends ExampleBase {
  readonly kind: 'text';
  readonly text: string;
}

export interface MessagesExample extends ExampleBase {
  readonly kind: 'messages';
  readonly messages: readonly ChatMessage[];
}

export type CompletionExample = ExampleBase & { readonly kind: 'completion' } & (
    | { readonly conversational: false; readonly prompt: string; readonly completion: string }
    | {
        readonly conversational: true;
        readonly prompt: readonly ChatMessage[];
        readonly completion: readonly ChatMessage[];
      }
  );

export type PreferenceExample = ExampleBase & {
  readonly kind: 'preference';
  /** True when the prompt was extracted as the shared start of chosen and rejected. */
  readonly implicitPrompt: boolean;
} & (
    | {
        readonly conversational: false;
        readonly prompt: string;
        readonly chosen: string;
        readonly rejected: string;
      }
    | {
        readonly conversational: true;
        readonly prompt: readonly ChatMessage[];
        readonly chosen: readonly ChatMessage[];
        readonly rejected: readonly ChatMessage[];
      }
  );

export type PromptExample = ExampleBase & { readonly kind: 'prompt' } & (
    | { readonly conversational: false; readonly prompt: string }
    | { readonly conversational: true; readonly prompt: readonly ChatMessage[] }
  );

export type Example =
  | TextExample
  | MessagesExample
  | CompletionExample
  | PreferenceExample
  | PromptExample;

/**
 * The convention a row follows, from its columns, or undefined when it follows none. Checked in
 * this order: `chosen`/`rejected` → preference, `messages`, `completion` → completion,
 * `prompt` → prompt, `text`. A row that matches a convention only in part (`chosen` without
 * `rejected`) is still detected, so that parsing can say what is missing.
 */
export function detectFormat(row: Readonly<Record<string, unknown>>): DatasetFormat | undefined {
  if ('chosen' in row || 'rejected' in row) return 'preference';
  if ('messages' in row) return 'messages';
  if ('completion' in row) return 'completion';
  if ('prompt' in row) return 'prompt';
  if ('text' in row) return 'text';
  return undefined;
}

export interface ParseOptions {
  /** The convention rows must follow; default: detected from the row. */
  readonly format?: DatasetFormat;
  /** Column renaming applied first: `{ question: 'prompt' }` reads column `question` as `prompt`. */
  readonly columns?: Readonly<Record<string, string>>;
  /** Where the row came from, for error messages. */
  readonly where?: DataLocation;
}

/** Check a row against its convention and return the typed example (errors are BAD_DATA). */
export function parseExample(row: unknown, opts: ParseOptions = {}): Example {
  const { where } = opts;
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    throw dataError(where, `expected an object with named columns, got ${kind(row)}`);
  }
  const renamed = renameColumns(row as Record<string, unknown>, opts.columns ?? {}, where);
  if (opts.format !== undefined && !DATASET_FORMATS.includes(opts.format)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Unknown dataset format '${opts.format}'. Known: ${DATASET_FORMATS.join(', ')}.`,
    );
  }
  const format = opts.format ?? detectFormat(renamed);
  if (format === undefined) {
    const found = Object.keys(renamed);
    throw dataError(
      where,
      `no known columns (found ${found.length ? found.map((c) => `'${c}'`).join(', ') : 'none'}); ` +
        `expected one of: ${DATASET_FORMATS.map((f) => CONVENTION[f]).join(' | ')}. ` +
        "Rename columns with `columns: { yours: 'prompt' }`.",
      { found },
    );
  }
  return new RowReader(renamed, format, opts.columns ?? {}, where).parse();
}

function renameColumns(
  row: Record<string, unknown>,
  columns: Readonly<Record<string, string>>,
  where: DataLocation | undefined,
): Record<string, unknown> {
  const entries = Object.entries(columns);
  if (entries.length === 0) return row;
  const out: Record<string, unknown> = { ...row };
  for (const [from, to] of entries) {
    if (!(from in row) || from === to) continue;
    if (to in row) {
      throw dataError(
        where,
        `column '${from}' is renamed to '${to}', but the row already has a column '${to}'`,
        { column: to },
      );
    }
    out[to] = row[from];
    delete out[from];
  }
  return out;
}

type Turns =
  | { conversational: false; value: string }
  | { conversational: true; value: ChatMessage[] };

/** One row being read as one convention; every error names the column and the convention. */
class RowReader {
  private readonly used = new Set<string>();

  constructor(
    private readonly row: Record<string, unknown>,
    private readonly format: DatasetFormat,
    private readonly columns: Readonly<Record<string, string>>,
    private readonly where: DataLocation | undefined,
  ) {}

  parse(): Example {
    switch (this.format) {
      case 'text':
        return { kind: 'text', text: this.string('text'), ...this.rest() };
      case 'messages':
        return { kind: 'messages', messages: this.conversation('messages'), ...this.rest() };
      case 'completion': {
        const prompt = this.turns('prompt');
        const completion = this.turns('completion');
        this.sameStyle(prompt, completion, 'completion');
        return prompt.conversational
          ? {
              kind: 'completion',
              conversational: true,
              prompt: prompt.value,
              completion: completion.value as ChatMessage[],
              ...this.rest(),
            }
          : {
              kind: 'completion',
              conversational: false,
              prompt: prompt.value,
              completion: completion.value as string,
              ...this.rest(),
            };
      }
      case 'preference':
        return this.preference();
      case 'prompt': {
        const prompt = this.turns('prompt');
        return prompt.conversational
          ? { kind: 'prompt', conversational: true, prompt: prompt.value, ...this.rest() }
          : { kind: 'prompt', conversational: false, prompt: prompt.value, ...this.rest() };
      }
      default:
        throw dataError(this.where, `unknown format '${this.format as string}'`);
    }
  }

  private preference(): PreferenceExample {
    const chosen = this.turns('chosen');
    const rejected = this.turns('rejected');
    this.sameStyle(chosen, rejected, 'rejected');
    if ('prompt' in this.row) {
      const prompt = this.turns('prompt');
      this.sameStyle(prompt, chosen, 'chosen');
      return {
        kind: 'preference',
        implicitPrompt: false,
        ...(prompt.conversational
          ? {
              conversational: true as const,
              prompt: prompt.value,
              chosen: chosen.value as ChatMessage[],
              rejected: rejected.value as ChatMessage[],
            }
          : {
              conversational: false as const,
              prompt: prompt.value,
              chosen: chosen.value as string,
              rejected: rejected.value as string,
            }),
        ...this.rest(),
      };
    }
    const split = extractPrompt(chosen.value, rejected.value);
    if (typeof split === 'string') {
      throw dataError(
        this.where,
        `no 'prompt' column, and ${split}; an implicit-prompt row needs chosen and rejected that ` +
          `start with the same prompt. The preference convention expects ${CONVENTION.preference}`,
        { column: 'prompt' },
      );
    }
    return {
      kind: 'preference',
      implicitPrompt: true,
      ...split,
      ...this.rest(),
    };
  }

  private missing(column: string): TroupeError {
    const from = Object.entries(this.columns).find(([, to]) => to === column)?.[0];
    const mapped = from ? ` (mapped from '${from}' by columns)` : '';
    return dataError(
      this.where,
      `missing column '${column}'${mapped}: the ${this.format} convention expects ${CONVENTION[this.format]}`,
      { column },
    );
  }

  private mistyped(column: string, want: string, got: string): TroupeError {
    return dataError(
      this.where,
      `column '${column}' ${want}, got ${got}: the ${this.format} convention expects ${CONVENTION[this.format]}`,
      { column },
    );
  }

  private take(column: string): unknown {
    if (!(column in this.row) || this.row[column] === undefined) throw this.missing(column);
    this.used.add(column);
    return this.row[column];
  }

  private string(column: string): string {
    const v = this.take(column);
    if (typeof v !== 'string') throw this.mistyped(column, 'must be a string', kind(v));
    return v;
  }

  private conversation(column: string): ChatMessage[] {
    const v = this.take(column);
    const problem = conversationProblem(v);
    if (problem) {
      throw dataError(
        this.where,
        `column '${column}': ${problem}; the ${this.format} convention expects ${CONVENTION[this.format]}`,
        { column },
      );
    }
    return v as ChatMessage[];
  }

  private turns(column: string): Turns {
    const v = this.take(column);
    if (typeof v === 'string') return { conversational: false, value: v };
    if (Array.isArray(v)) return { conversational: true, value: this.conversation(column) };
    throw this.mistyped(column, 'must be a string or a list of messages', kind(v));
  }

  private sameStyle(a: Turns, b: Turns, column: string): void {
    if (a.conversational === b.conversational) return;
    const style = (t: Turns) => (t.conversational ? 'a list of messages' : 'a string');
    throw dataError(
      this.where,
      `column '${column}' is ${style(b)} but the row's other turns are ${style(a)}; ` +
        `within a row they must all be strings or all lists of messages. ` +
        `The ${this.format} convention expects ${CONVENTION[this.format]}`,
      { column },
    );
  }

  private rest(): { extra: Record<string, unknown>; where?: DataLocation } {
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.row)) if (!this.used.has(k)) extra[k] = v;
    return this.where ? { extra, where: this.where } : { extra };
  }
}
