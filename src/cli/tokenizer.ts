import { createReadStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { textOf } from '../algorithms/lm.js';
import { readExamples } from '../data/datasets/index.js';
import {
  type BpeTokenizer,
  loadTokenizer,
  saveTokenizer,
  trainBpe,
} from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';

/** encode: `{"text": ...}` lines → `{"ids": [...]}`; decode: the reverse. */
export const TOKENIZER_USAGE =
  'troupe tokenizer encode|decode --tokenizer FILE|DIR --input IN.jsonl --output OUT.jsonl [--no-special-tokens] [--skip-special-tokens]\n' +
  '             troupe tokenizer train --input DATA.jsonl --output DIR [--vocab-size N] [--min-frequency N] [--special-tokens a,b]';

/**
 * `troupe tokenizer train`: a byte-level BPE trained on the text of a dataset (any column
 * convention), saved as tokenizer.json + tokenizer_config.json.
 */
async function runTrainTokenizer(args: string[], log: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      input: { type: 'string' },
      output: { type: 'string' },
      'vocab-size': { type: 'string', default: '8192' },
      'min-frequency': { type: 'string', default: '2' },
      'special-tokens': {
        type: 'string',
        default: '<|endoftext|>,<|pad|>,<|im_start|>,<|im_end|>',
      },
    },
    strict: true,
  });
  if (!values.input || !values.output) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--input and --output are required. Usage: ${TOKENIZER_USAGE}`,
    );
  }
  const vocabSize = Number(values['vocab-size']);
  const minFrequency = Number(values['min-frequency']);
  if (!Number.isInteger(vocabSize) || vocabSize < 257) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--vocab-size must be an integer > 256, got '${values['vocab-size']}'`,
    );
  }
  const specialTokens = values['special-tokens'].split(',').filter((t) => t !== '');
  const texts: string[] = [];
  for await (const ex of readExamples(values.input)) texts.push(...textOf(ex));
  const t0 = performance.now();
  const tok = trainBpe(texts, {
    vocabSize,
    minFrequency,
    specialTokens,
    eosToken: specialTokens[0],
    padToken: specialTokens[1],
  });
  await saveTokenizer(values.output, tok);
  log(
    `trained ${tok.vocabSize} tokens on ${texts.length} texts in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${values.output}`,
  );
  return 0;
}

/** One direction of the command: which input field it reads and how it turns it into output. */
interface Mode {
  readonly example: string;
  convert(rec: Record<string, unknown>, where: string): { out: unknown; tokens: number };
}

function modes(tok: BpeTokenizer, values: Record<string, unknown>): Record<string, Mode> {
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
