import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { textOf } from '../algorithms/model-setup.js';
import { readExamples } from '../data/datasets/index.js';
import {
  loadTokenizer,
  saveTokenizer,
  type Tokenizer,
  trainBpe,
  trainUnigram,
  trainWordPiece,
} from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { writeAtomic } from '../util/atomic.js';
import {
  type CommandSpec,
  HELP,
  helpOf,
  intOption,
  type OptionSpec,
  parseOptions,
  usageOf,
} from './options.js';

/** The tokenizer kinds `troupe tokenizer train` makes. */
const KINDS = ['bpe', 'wordpiece', 'unigram'] as const;
type Kind = (typeof KINDS)[number];

/** One option of `troupe tokenizer train`: what parseArgs reads and what --help says. */
interface TrainOption extends OptionSpec {
  /** The kinds it applies to; all when absent. */
  readonly kinds?: readonly Kind[];
}

const SPECIALS: Readonly<Record<Kind, string>> = {
  bpe: '<|endoftext|>,<|pad|>,<|im_start|>,<|im_end|>',
  wordpiece: '[PAD],[UNK],[CLS],[SEP],[MASK]',
  unigram: '<unk>,<s>,</s>',
};

const forKinds = (o: TrainOption): TrainOption =>
  o.kinds ? { ...o, only: `--kind ${o.kinds.join('|')}` } : o;

/** The one table the parser and the help text are made from. */
export const TRAIN_OPTIONS: readonly TrainOption[] = (
  [
    {
      name: 'input',
      type: 'string',
      value: 'DATA.jsonl',
      required: true,
      help: 'JSONL or Parquet dataset (any column convention)',
    },
    {
      name: 'output',
      type: 'string',
      value: 'DIR',
      required: true,
      help: 'where tokenizer.json and tokenizer_config.json go',
    },
    {
      name: 'kind',
      type: 'string',
      value: KINDS.join('|'),
      default: 'bpe',
      help: 'bpe: byte-level BPE (GPT-2 style); wordpiece: BERT-style WordPiece (BertNormalizer, [CLS] A [SEP]); unigram: SentencePiece-style Unigram (NFKC, Metaspace)',
    },
    {
      name: 'vocab-size',
      type: 'string',
      value: 'N',
      default: '8192',
      help: 'final vocabulary size, special tokens included',
    },
    {
      name: 'min-frequency',
      type: 'string',
      value: 'N',
      default: '2',
      kinds: ['bpe', 'wordpiece'],
      help: 'a pair seen fewer times is never merged',
    },
    {
      name: 'special-tokens',
      type: 'string',
      value: 'a,b',
      help: `given the first ids, in order (bpe: the first is EOS, the second PAD; wordpiece: [UNK] must be one; unigram: unk, BOS, EOS); default per kind: ${KINDS.map((k) => `${k} ${SPECIALS[k]}`).join('; ')}`,
    },
    {
      name: 'cased',
      type: 'boolean',
      kinds: ['wordpiece'],
      help: 'keep case and accents (default: lowercase, accents stripped)',
    },
    {
      name: 'limit-alphabet',
      type: 'string',
      value: 'N',
      kinds: ['wordpiece'],
      help: 'keep only the N most frequent characters',
    },
    {
      name: 'max-piece-length',
      type: 'string',
      value: 'N',
      default: '16',
      kinds: ['unigram'],
      help: 'longest piece, in characters',
    },
    HELP,
  ] satisfies readonly TrainOption[]
).map(forKinds);

export const TRAIN_SPEC: CommandSpec = {
  name: 'tokenizer train',
  summary: 'Trains a tokenizer on the text of a dataset and saves it in the Hugging Face layout.',
  options: TRAIN_OPTIONS,
};

export const TRAIN_USAGE = usageOf(TRAIN_SPEC);

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

/** `troupe tokenizer train --help`: every option of the table, with its default and kinds. */
export function trainHelp(): string {
  return helpOf(TRAIN_SPEC);
}

/**
 * `troupe tokenizer train`: a byte-level BPE, WordPiece or Unigram tokenizer trained on the
 * text of a dataset (any column convention), saved as tokenizer.json + tokenizer_config.json.
 */
async function runTrainTokenizer(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseOptions(TRAIN_SPEC, args);
  if (!parsed) {
    process.stdout.write(trainHelp());
    return 0;
  }
  const { values } = parsed;
  const kind = values['kind'] as string;
  if (!(KINDS as readonly string[]).includes(kind)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--kind must be one of ${KINDS.join(', ')}, got '${kind}'`,
    );
  }
  const k = kind as Kind;
  for (const o of TRAIN_OPTIONS) {
    const given = args.some((a) => a === `--${o.name}` || a.startsWith(`--${o.name}=`));
    if (given && o.kinds !== undefined && !o.kinds.includes(k)) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `--${o.name} applies to --kind ${o.kinds.join('|')}, not ${k}`,
      );
    }
  }
  const vocabSize = intOption(values, 'vocab-size', 2);
  const specialTokens = String(values['special-tokens'] ?? SPECIALS[k])
    .split(',')
    .filter((t) => t !== '');
  const texts: string[] = [];
  for await (const ex of readExamples(values['input'] as string)) texts.push(...textOf(ex));
  const t0 = performance.now();
  let tok: Tokenizer;
  if (k === 'bpe') {
    if (vocabSize < 257) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `--vocab-size must be an integer > 256 for --kind bpe, got '${vocabSize}'`,
      );
    }
    tok = trainBpe(texts, {
      vocabSize,
      minFrequency: intOption(values, 'min-frequency', 0),
      specialTokens,
      eosToken: specialTokens[0],
      padToken: specialTokens[1],
    });
  } else if (k === 'wordpiece') {
    const cased = values['cased'] === true;
    tok = trainWordPiece(texts, {
      vocabSize,
      minFrequency: intOption(values, 'min-frequency', 0),
      specialTokens,
      unkToken: '[UNK]',
      lowercase: !cased,
      stripAccents: !cased,
      limitAlphabet:
        values['limit-alphabet'] === undefined ? undefined : intOption(values, 'limit-alphabet', 1),
    });
  } else {
    tok = trainUnigram(texts, {
      vocabSize,
      specialTokens,
      unkToken: specialTokens[0],
      bosToken: specialTokens[1],
      eosToken: specialTokens[2],
      maxPieceLength: intOption(values, 'max-piece-length', 1),
    });
  }
  await saveTokenizer(values['output'] as string, tok);
  log(
    `trained ${tok.vocabSize} tokens on ${texts.length} texts in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${values['output']} (${k})`,
  );
  return 0;
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
