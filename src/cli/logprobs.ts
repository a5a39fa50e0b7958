import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadTokenizer } from '../data/tokenizer/index.js';
import type { TokenizerLike } from '../data/tokenizer/types.js';
import { TroupeError } from '../errors.js';
import { startRuntime } from '../kernels/runtime.js';
import { loadModel } from '../policy/io.js';
import type { CausalLM } from '../policy/model/causal-lm.js';
import { tokenLogprobs } from '../policy/score.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';
import { writeAtomic } from '../util/atomic.js';
import { type CommandSpec, helpOf, intOption, parseOptions, usageOf } from './options.js';

export const LOGPROBS_SPEC: CommandSpec = {
  name: 'logprobs',
  summary:
    'per-token log-probs and totals of JSONL rows under a model (scoring, perplexity): {"input_ids": [...]} lines, or {"text": ...} with a tokenizer',
  options: [
    {
      name: 'model',
      type: 'string',
      value: 'DIR|RUN',
      required: true,
      help: 'a saved model (any model path)',
    },
    {
      name: 'input',
      type: 'string',
      value: 'FILE.jsonl',
      required: true,
      help: 'one row per line',
    },
    {
      name: 'output',
      type: 'string',
      value: 'OUT.jsonl',
      required: true,
      help: 'one result per row (written to a temporary file, renamed when every line succeeded)',
    },
    {
      name: 'tokenizer',
      type: 'string',
      value: 'FILE|DIR',
      help: 'for {"text"} rows (default: the model\'s tokenizer.json, when it has one)',
    },
    { name: 'batch-size', type: 'string', value: 'N', default: '8', help: 'rows per forward pass' },
    { name: 'backend', type: 'string', value: 'NAME', default: 'auto', help: 'tensor backend' },
  ],
};

export const LOGPROBS_USAGE = usageOf(LOGPROBS_SPEC);

interface Line {
  readonly lineNo: number;
  readonly ids: number[];
}

/**
 * Parse one input line: `{"input_ids": [...]}`, or `{"text": "..."}` when a tokenizer is given
 * (encoded with its special-token template); errors name the file and line.
 */
export function parseLine(
  text: string,
  lineNo: number,
  file: string,
  model: CausalLM,
  tokenizer?: TokenizerLike,
): Line {
  const where = `${file}:${lineNo}`;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new TroupeError('BAD_ARGUMENT', `${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${where}: expected an object like {"input_ids": [1, 2, 3]}`,
    );
  }
  const rec = obj as Record<string, unknown>;
  if (!('input_ids' in rec) && tokenizer && typeof rec['text'] === 'string') {
    rec['input_ids'] = tokenizer.encode(rec['text']);
  }
  if (!('input_ids' in rec)) {
    const hint =
      'text' in rec
        ? "'text' needs a tokenizer: put tokenizer.json in the model directory or pass --tokenizer"
        : "expected an 'input_ids' array";
    throw new TroupeError('BAD_ARGUMENT', `${where}: ${hint}`);
  }
  const ids = rec['input_ids'];
  const V = model.config.vocabSize;
  if (!Array.isArray(ids) || ids.length === 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${where}: 'input_ids' must be a non-empty array of token ids`,
    );
  }
  ids.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${where}: input_ids[${i}] = ${JSON.stringify(t)} is not a token id in [0, ${V})`,
      );
    }
  });
  if (ids.length > model.config.maxPositions) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${where}: ${ids.length} tokens is more than the model's ${model.config.maxPositions} positions`,
    );
  }
  return { lineNo, ids };
}

/** The output record of one line. */
export function record(ids: number[], lps: number[]) {
  const total = lps.reduce((s, v) => s + v, 0);
  return {
    input_ids: ids,
    token_logprobs: lps,
    total,
    num_scored: lps.length,
    perplexity: lps.length > 0 ? Math.exp(-total / lps.length) : null,
  };
}

/**
 * `troupe logprobs`: per-token log-probs and their total for every line of a JSONL file,
 * streamed in batches. Output goes to a temporary file renamed to OUT only when every line
 * succeeded (src/util/atomic), so a failure never leaves a truncated file under the requested
 * name.
 */
export async function runLogprobs(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseOptions(LOGPROBS_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(LOGPROBS_SPEC));
    return 0;
  }
  const values = parsed.values as {
    model: string;
    input: string;
    output: string;
    tokenizer?: string;
    backend: string;
  };
  const batchSize = intOption(parsed.values, 'batch-size', 1);
  const rt = await startRuntime({ backend: values.backend as never });
  const source = await resolveModelSource(values.model!, { field: '--model' });
  log(`--model ${source.path}: ${describeModelSource(source)}`);
  const model = await loadModel(source);
  const tokFile = values.tokenizer ?? join(source.tokenizerDir ?? source.dir, 'tokenizer.json');
  const tokenizer =
    values.tokenizer || existsSync(tokFile) ? await loadTokenizer(tokFile) : undefined;
  log(
    `model ${source.dir} (${model.config.family}, ${model.config.layers} layers) on ${rt.backend}`,
  );
  const t0 = performance.now();
  let lines = 0;
  let tokens = 0;
  try {
    await writeAtomic(values.output, async (out) => {
      const flush = async (pending: Line[]) => {
        const lps = await tokenLogprobs(
          model,
          pending.map((l) => l.ids),
        );
        await out.write(
          pending.map((l, i) => `${JSON.stringify(record(l.ids, lps[i]))}\n`).join(''),
        );
        lines += pending.length;
        tokens += pending.reduce((s, l) => s + l.ids.length, 0);
        const secs = (performance.now() - t0) / 1000;
        log(`${lines} lines, ${tokens} tokens, ${(tokens / secs).toFixed(0)} tokens/s`);
      };
      const reader = createInterface({
        input: createReadStream(values.input!),
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      let pending: Line[] = [];
      let lineNo = 0;
      for await (const text of reader) {
        lineNo++;
        if (text.trim() === '') continue;
        pending.push(parseLine(text, lineNo, values.input!, model, tokenizer));
        if (pending.length === batchSize) {
          await flush(pending);
          pending = [];
        }
      }
      if (pending.length > 0) await flush(pending);
    });
  } finally {
    model.dispose();
  }
  log(`wrote ${lines} lines to ${values.output}`);
  return 0;
}
