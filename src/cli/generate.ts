import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CHATML_TEMPLATE, type ChatMessage, renderChat } from '../data/index.js';
import { loadTokenizer } from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';
import { startRuntime } from '../kernels/runtime.js';
import { generate } from '../policy/generate.js';
import { loadModel } from '../policy/io.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';

export const GENERATE_USAGE =
  'troupe generate --model DIR|RUN --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--backend NAME]';
export const CHAT_USAGE =
  'troupe chat --model DIR|RUN [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]';

const SAMPLING = {
  model: { type: 'string' },
  'max-new-tokens': { type: 'string', default: '64' },
  temperature: { type: 'string', default: '0.8' },
  'top-k': { type: 'string', default: '0' },
  'top-p': { type: 'string', default: '1' },
  seed: { type: 'string', default: '0' },
  backend: { type: 'string', default: 'auto' },
} as const;

function num(values: Record<string, unknown>, key: string): number {
  const v = Number(values[key]);
  if (!Number.isFinite(v))
    throw new TroupeError(
      'BAD_ARGUMENT',
      `--${key} must be a number, got '${String(values[key])}'`,
    );
  return v;
}

async function session(
  values: Record<string, string | boolean | undefined>,
  log: (line: string) => void,
) {
  if (!values['model']) throw new TroupeError('BAD_ARGUMENT', '--model DIR is required');
  await startRuntime({ backend: values['backend'] as never });
  const source = await resolveModelSource(values['model'] as string, { field: '--model' });
  log(`--model ${source.path}: ${describeModelSource(source)}`);
  const tok = await loadTokenizer(source.tokenizerDir ?? source.dir);
  const model = await loadModel(source);
  let turn = 0;
  const sample = async (ids: number[], stop: number[]) => {
    const out = await generate(model, [ids], {
      maxNewTokens: num(values, 'max-new-tokens'),
      temperature: num(values, 'temperature'),
      topK: num(values, 'top-k'),
      topP: num(values, 'top-p'),
      stopTokenIds: stop,
      rng: RandomStream.of({
        seed: num(values, 'seed'),
        step: turn++,
        actor: 'cli',
        purpose: 'sample',
      }),
    });
    return out.responses[0].filter((t) => !stop.includes(t));
  };
  return { model, tok, sample };
}

/** `troupe generate`: one completion of a prompt. */
export async function runGenerate(
  args: string[],
  log: (line: string) => void = () => {},
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...SAMPLING, prompt: { type: 'string' } },
    strict: true,
  });
  if (values.prompt === undefined)
    throw new TroupeError('BAD_ARGUMENT', `--prompt is required. Usage: ${GENERATE_USAGE}`);
  const { model, tok, sample } = await session(values, log);
  try {
    const ids = tok.encode(values.prompt);
    const stop = tok.eosTokenId === undefined ? [] : [tok.eosTokenId];
    process.stdout.write(`${values.prompt}${tok.decode(await sample(ids, stop))}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

/** `troupe chat`: a conversation with a model, through its chat template (ChatML if it has none). */
export async function runChat(
  args: string[],
  log: (line: string) => void = () => {},
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...SAMPLING, system: { type: 'string' } },
    strict: true,
  });
  const { model, tok, sample } = await session(values, log);
  const template = tok.chatTemplate ?? CHATML_TEMPLATE;
  const stop = [tok.eosTokenId, tok.tokenToId('<|im_end|>')].filter(
    (x): x is number => x !== undefined,
  );
  const messages: ChatMessage[] = values.system ? [{ role: 'system', content: values.system }] : [];
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    process.stdout.write('(empty line or Ctrl-D to quit)\n');
    // Lines are read through the interface's iterator, which buffers them: piped input that
    // arrives while the model is still answering is kept (rl.question would drop it and hang).
    process.stdout.write('you> ');
    for await (const line of rl) {
      if (line.trim() === '') break;
      messages.push({ role: 'user', content: line });
      const text = renderChat(template, messages, { addGenerationPrompt: true });
      const reply = tok
        .decode(await sample(tok.encode(text, { addSpecialTokens: false }), stop))
        .trim();
      messages.push({ role: 'assistant', content: reply });
      process.stdout.write(`model> ${reply}\nyou> `);
    }
    return 0;
  } finally {
    rl.close();
    model.dispose();
  }
}
