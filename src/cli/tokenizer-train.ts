import { textOf } from '../algorithms/model-setup.js';
import { readExamples } from '../data/datasets/index.js';
import {
  saveTokenizer,
  type Tokenizer,
  trainBpe,
  trainUnigram,
  trainWordPiece,
} from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import {
  type CommandSpec,
  HELP,
  helpOf,
  intOption,
  type OptionSpec,
  parseOptions,
  usageOf,
} from './options.js';

/*
 * `troupe tokenizer train`: its option table (the parser and --help both read it) and the
 * command. The encode and decode sub-commands live in tokenizer.ts, which dispatches here.
 */

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

/** `troupe tokenizer train --help`: every option of the table, with its default and kinds. */
export function trainHelp(): string {
  return helpOf(TRAIN_SPEC);
}

/**
 * `troupe tokenizer train`: a byte-level BPE, WordPiece or Unigram tokenizer trained on the
 * text of a dataset (any column convention), saved as tokenizer.json + tokenizer_config.json.
 */
export async function runTrainTokenizer(
  args: string[],
  log: (line: string) => void,
): Promise<number> {
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
