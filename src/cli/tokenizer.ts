import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { writeAtomic } from '../util/atomic.js';
import { type CommandSpec, helpOf, parseOptions, usageOf } from './options.js';
import { runTrainTokenizer, TRAIN_SPEC } from './tokenizer-train.js';

/** `troupe tokenizer encode|decode`: `{"text": ...}` lines → `{"ids": [...]}` lines, or back. */
const codecSpec = (sub: 'encode' | 'decode'): CommandSpec => ({
  name: `tokenizer ${sub}`,
  summary:
    sub === 'encode'
      ? '{"text": ...} JSONL lines to {"ids": [...]} lines, with any tokenizer.json Troupe reads'
      : '{"ids": [...]} JSONL lines to {"text": ...} lines',
  options: [
    {
      name: 'tokenizer',
      type: 'string',
      value: 'FILE|DIR',
      required: true,
      help: 'a tokenizer.json, or the directory holding it',
    },
    {
      name: 'input',
      type: 'string',
      value: 'IN.jsonl',
      required: true,
      help: 'one record per line',
    },
    {
      name: 'output',
      type: 'string',
      value: 'OUT.jsonl',
      required: true,
      help: 'one line per non-blank input line (written to a temporary file, renamed when every line succeeded)',
    },
    sub === 'encode'
      ? {
          name: 'no-special-tokens',
          type: 'boolean',
          help: "leave out the tokenizer's template tokens (BOS, [CLS] …)",
        }
      : {
          name: 'skip-special-tokens',
          type: 'boolean',
          help: 'leave special tokens out of the text',
        },
  ],
});

/** The sub-commands of `troupe tokenizer`, by name: the parser, the usage and --help read it. */
export const TOKENIZER_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map([
  ['train', TRAIN_SPEC],
  ['encode', codecSpec('encode')],
  ['decode', codecSpec('decode')],
]);

/** One usage line per sub-command. */
export const TOKENIZER_USAGE = [...TOKENIZER_COMMANDS.values()]
  .map((c, i) => `${i === 0 ? '' : '             '}${usageOf(c)}`)
  .join('\n');

/** `troupe tokenizer [SUB] --help`: the sub-command's help, or every sub-command's usage. */
export function tokenizerHelp(args: readonly string[]): string {
  const sub = TOKENIZER_COMMANDS.get(args[0] ?? '');
  if (sub) return helpOf(sub);
  return [
    'usage:',
    ...[...TOKENIZER_COMMANDS.values()].map((c) => `  ${usageOf(c)}\n      ${c.summary}`),
    '',
    '`troupe tokenizer SUB --help` lists the options of SUB.',
    '',
  ].join('\n');
}

/** One direction of the command: which input field it reads and how it turns it into output. */
interface Mode {
  readonly example: string;
  convert(rec: Record<string, unknown>, where: string): { out: unknown; tokens: number };
}

function modes(tok: Tokenizer, values: Record<string, unknown>): Record<string, Mode> {
  return {
    encode: {
      example: '{"text": "Hello"}',
      convert(rec, where) {
        const text = rec['text'];
        if (typeof text !== 'string') throw lineError(where, "expected a string field 'text'");
        const ids = tok.encode(text, { addSpecialTokens: values['no-special-tokens'] !== true });
        return { out: { ids }, tokens: ids.length };
      },
    },
    decode: {
      example: '{"ids": [15496, 11]}',
      convert(rec, where) {
        const ids = rec['ids'];
        if (!Array.isArray(ids)) throw lineError(where, "expected an array field 'ids'");
        ids.forEach((id, i) => {
          if (
            !Number.isInteger(id) ||
            id < 0 ||
            id >= tok.vocabSize ||
            tok.idToToken(id) === undefined
          ) {
            throw lineError(
              where,
              `ids[${i}] = ${JSON.stringify(id)} is not a token id of this tokenizer (vocab size ${tok.vocabSize})`,
            );
          }
        });
        const text = tok.decode(ids, { skipSpecialTokens: values['skip-special-tokens'] === true });
        return { out: { text }, tokens: ids.length };
      },
    },
  };
}

function lineError(where: string, msg: string): TroupeError {
  return new TroupeError('BAD_ARGUMENT', `${where}: ${msg}`, { details: { where } });
}

function parseRecord(text: string, where: string, example: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw lineError(where, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw lineError(where, `expected an object like ${example}`);
  }
  return obj as Record<string, unknown>;
}

/**
 * `troupe tokenizer encode|decode`: JSONL text → ids or ids → text, one output line per
 * non-blank input line, streamed. Output goes to a temporary file renamed to OUT only when
 * every line succeeded (src/util/atomic), so a failure never leaves a truncated file under the
 * requested name.
 */
export async function runTokenizer(args: string[], log: (line: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  const spec = TOKENIZER_COMMANDS.get(sub ?? '');
  if (!spec) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Unknown tokenizer command '${sub ?? ''}'. Known: ${[...TOKENIZER_COMMANDS.keys()].join(', ')}. Usage: ${TOKENIZER_USAGE}`,
    );
  }
  if (sub === 'train') return runTrainTokenizer(rest, log);
  const parsed = parseOptions(spec, rest);
  if (!parsed) {
    process.stdout.write(helpOf(spec));
    return 0;
  }
  const { values } = parsed;
  const input = values['input'] as string;
  const output = values['output'] as string;
  const tok = await loadTokenizer(values['tokenizer'] as string);
  const mode = modes(tok, values)[sub as 'encode' | 'decode'];
  const t0 = performance.now();
  let lines = 0;
  let tokens = 0;
  let chars = 0;
  await writeAtomic(output, async (out) => {
    const reader = createInterface({
      input: createReadStream(input),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let buffer: string[] = [];
    let lineNo = 0;
    for await (const text of reader) {
      lineNo++;
      if (text.trim() === '') continue;
      const where = `${input}:${lineNo}`;
      const { out: rec, tokens: n } = mode.convert(parseRecord(text, where, mode.example), where);
      buffer.push(`${JSON.stringify(rec)}\n`);
      lines++;
      tokens += n;
      chars += text.length;
      // Written in batches: one write per line would dominate the time on small lines.
      if (buffer.length === 1024) {
        await out.write(buffer.join(''));
        buffer = [];
      }
    }
    await out.write(buffer.join(''));
  });
  const secs = (performance.now() - t0) / 1000;
  log(
    `${sub}d ${lines} lines, ${tokens} tokens in ${secs.toFixed(2)} s (${(chars / 1e6 / Math.max(secs, 1e-9)).toFixed(1)} M input chars/s)`,
  );
  log(`wrote ${lines} lines to ${output}`);
  return 0;
}

export { TRAIN_OPTIONS, trainHelp } from './tokenizer-train.js';
