import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { textOf } from '../algorithms/lm.js';
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

/** The tokenizer kinds `troupe tokenizer train` makes. */
const KINDS = ['bpe', 'wordpiece', 'unigram'] as const;
type Kind = (typeof KINDS)[number];

/** One option of `troupe tokenizer train`: what parseArgs reads and what --help says. */
interface TrainOption {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  /** Shown in the usage line, e.g. N. */
  readonly value?: string;
  readonly default?: string;
  /** The kinds it applies to; all when absent. */
  readonly kinds?: readonly Kind[];
  readonly help: string;
}

const SPECIALS: Readonly<Record<Kind, string>> = {
  bpe: '<|endoftext|>,<|pad|>,<|im_start|>,<|im_end|>',
  wordpiece: '[PAD],[UNK],[CLS],[SEP],[MASK]',
  unigram: '<unk>,<s>,</s>',
};

/** The one table the parser and the help text are made from. */
export const TRAIN_OPTIONS: readonly TrainOption[] = [
  {
    name: 'input',
    type: 'string',
    value: 'DATA.jsonl',
    help: 'JSONL or Parquet dataset (any column convention); required',
  },
  {
    name: 'output',
    type: 'string',
    value: 'DIR',
    help: 'where tokenizer.json and tokenizer_config.json go; required',
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
  { name: 'help', type: 'boolean', help: 'print this help' },
];

const usageOf = (o: TrainOption) => `--${o.name}${o.value === undefined ? '' : ` ${o.value}`}`;

export const TRAIN_USAGE = `troupe tokenizer train ${TRAIN_OPTIONS.filter((o) => o.name !== 'help')
  .map((o) => (o.name === 'input' || o.name === 'output' ? usageOf(o) : `[${usageOf(o)}]`))
  .join(' ')}`;

/** encode: `{"text": ...}` lines → `{"ids": [...]}`; decode: the reverse. */
export const TOKENIZER_USAGE =
  'troupe tokenizer encode|decode --tokenizer FILE|DIR --input IN.jsonl --output OUT.jsonl [--no-special-tokens] [--skip-special-tokens]\n' +
  `             ${TRAIN_USAGE}`;

/** `troupe tokenizer train --help`: every option of the table, with its default and kinds. */
export function trainHelp(): string {
  const width = Math.max(...TRAIN_OPTIONS.map((o) => usageOf(o).length));
  const lines = TRAIN_OPTIONS.map((o) => {
    const notes = [
      o.default === undefined ? undefined : `default ${o.default}`,
      o.kinds === undefined ? undefined : `--kind ${o.kinds.join('|')} only`,
    ].filter((n) => n !== undefined);
    return `  ${usageOf(o).padEnd(width)}  ${o.help}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
  });
  return [
    `usage: ${TRAIN_USAGE}`,
    '',
    'Trains a tokenizer on the text of a dataset and saves it in the Hugging Face layout.',
    '',
    ...lines,
    '',
  ].join('\n');
}

function intOption(values: Record<string, unknown>, name: string, min: number): number {
  const raw = values[name];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--${name} must be an integer ≥ ${min}, got '${String(raw)}'`,
    );
  }
  return n;
}

/**
 * `troupe tokenizer train`: a byte-level BPE, WordPiece or Unigram tokenizer trained on the
 * text of a dataset (any column convention), saved as tokenizer.json + tokenizer_config.json.
 */
async function runTrainTokenizer(args: string[], log: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: Object.fromEntries(
      TRAIN_OPTIONS.map((o) => [
        o.name,
        { type: o.type, ...(o.default === undefined ? {} : { default: o.default }) },
      ]),
    ),
    strict: true,
  });
  if (values['help'] === true) {
    process.stdout.write(trainHelp());
    return 0;
  }
  if (!values['input'] || !values['output']) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--input and --output are required. Usage: ${TRAIN_USAGE}`,
    );
  }
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
 * non-blank input line, streamed. Output goes to OUT.partial and is renamed to OUT only when
 * every line succeeded, so a failure never leaves a truncated file under the requested name.
 */
export async function runTokenizer(args: string[], log: (line: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'train') return runTrainTokenizer(rest, log);
  const { values } = parseArgs({
    args: rest,
    options: {
      tokenizer: { type: 'string' },
      input: { type: 'string' },
      output: { type: 'string' },
      'no-special-tokens': { type: 'boolean', default: false },
      'skip-special-tokens': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (sub !== 'encode' && sub !== 'decode') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Unknown tokenizer command '${sub ?? ''}'. Known: encode, decode. Usage: ${TOKENIZER_USAGE}`,
    );
  }
  for (const k of ['tokenizer', 'input', 'output'] as const) {
    if (!values[k]) {
      throw new TroupeError('BAD_ARGUMENT', `--${k} is required. Usage: ${TOKENIZER_USAGE}`);
    }
  }
  const input = values.input!;
  const output = values.output!;
  const tok = await loadTokenizer(values.tokenizer!);
  const mode = modes(tok, values)[sub];
  const partial = `${output}.partial`;
  const out = await open(partial, 'w');
  const t0 = performance.now();
  let lines = 0;
  let tokens = 0;
  let chars = 0;
  try {
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
    await out.close();
    await rename(partial, output);
  } catch (e) {
    await out.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw e;
  }
  const secs = (performance.now() - t0) / 1000;
  log(
    `${sub}d ${lines} lines, ${tokens} tokens in ${secs.toFixed(2)} s (${(chars / 1e6 / Math.max(secs, 1e-9)).toFixed(1)} M input chars/s)`,
  );
  log(`wrote ${lines} lines to ${output}`);
  return 0;
}
