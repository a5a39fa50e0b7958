import { createInterface } from 'node:readline';
import { CHATML_TEMPLATE, type ChatMessage, renderChat } from '../data/index.js';
import { loadTokenizer } from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { RandomStream } from '../kernels/random.js';
import { startRuntime } from '../kernels/runtime.js';
import { generate } from '../policy/generate.js';
import { loadModel } from '../policy/io.js';
import type { CausalLM } from '../policy/model/causal-lm.js';
import { positionLimit } from '../policy/model/rope.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';
import {
  type CommandSpec,
  helpOf,
  intOption,
  numberOption,
  type OptionSpec,
  type OptionValues,
  parseOptions,
  usageOf,
} from './options.js';

/** Sampling options of `generate` and `chat`: one table, read by the parser and by --help. */
const SAMPLING: readonly OptionSpec[] = [
  {
    name: 'model',
    type: 'string',
    value: 'DIR|RUN',
    required: true,
    help: 'a saved model: a Hugging Face directory, a LoRA checkpoint or a run directory (its best checkpoint)',
  },
  {
    name: 'max-new-tokens',
    type: 'string',
    value: 'N',
    default: '64',
    help: "most tokens to generate (fewer where the model's context ends)",
  },
  { name: 'temperature', type: 'string', value: 'T', default: '0.8', help: '0 = greedy' },
  {
    name: 'top-k',
    type: 'string',
    value: 'K',
    default: '0',
    help: 'sample from the K most likely tokens (0 = all)',
  },
  {
    name: 'top-p',
    type: 'string',
    value: 'P',
    default: '1',
    help: 'nucleus sampling: the smallest set of tokens with probability ≥ P',
  },
  { name: 'seed', type: 'string', value: 'S', default: '0', help: 'seed of the sampling stream' },
  {
    name: 'backend',
    type: 'string',
    value: 'NAME',
    default: 'auto',
    help: 'tensor backend: auto, wasm, cpu, webgpu, tensorflow, tensorflow-gpu',
  },
];

export const GENERATE_SPEC: CommandSpec = {
  name: 'generate',
  summary:
    "sample a completion of --prompt from a saved model (stopping at EOS, --max-new-tokens or the model's context)",
  options: [
    SAMPLING[0],
    { name: 'prompt', type: 'string', value: 'TEXT', required: true, help: 'the text to continue' },
    ...SAMPLING.slice(1),
  ],
};

export const CHAT_SPEC: CommandSpec = {
  name: 'chat',
  summary:
    'talk to a saved model through its chat template (ChatML when it has none); one line per turn from the terminal or piped stdin, an empty line or end of input ends it',
  options: [
    ...SAMPLING,
    { name: 'system', type: 'string', value: 'TEXT', help: 'a system message to start with' },
  ],
};

export const GENERATE_USAGE = usageOf(GENERATE_SPEC);
export const CHAT_USAGE = usageOf(CHAT_SPEC);

const num = numberOption;

/**
 * How many tokens may follow `promptTokens` within the model's context (its positions); a
 * prompt that leaves no room is refused with both numbers.
 */
export function roomFor(model: CausalLM, promptTokens: number, what: string): number {
  const limit = positionLimit(model.config);
  if (promptTokens >= limit) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${what} is ${promptTokens} tokens, and the model's context is ${limit} positions: nothing can follow it; shorten it`,
      { details: { promptTokens, context: limit } },
    );
  }
  return limit - promptTokens;
}

async function session(values: OptionValues, log: (line: string) => void) {
  await startRuntime({ backend: values['backend'] as never });
  const source = await resolveModelSource(values['model'] as string, { field: '--model' });
  log(`--model ${source.path}: ${describeModelSource(source)}`);
  const tok = await loadTokenizer(source.tokenizerDir ?? source.dir);
  const model = await loadModel(source);
  let turn = 0;
  const asked = intOption(values, 'max-new-tokens', 1);
  /** A completion of `ids`: up to --max-new-tokens, fewer where the model's context ends. */
  const sample = async (ids: number[], stop: number[], what: string) => {
    const room = roomFor(model, ids.length, what);
    const out = await generate(model, [ids], {
      maxNewTokens: Math.min(asked, room),
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
    const response = out.responses[0];
    const full = room < asked && response.length === room && !out.stopped[0];
    if (full)
      log(
        `stopped at the model's context (${positionLimit(model.config)} positions): ${room} of the ${asked} new tokens asked for`,
      );
    return response.filter((t) => !stop.includes(t));
  };
  return { model, tok, sample };
}

/** `troupe generate`: one completion of a prompt. */
export async function runGenerate(
  args: string[],
  log: (line: string) => void = () => {},
): Promise<number> {
  const parsed = parseOptions(GENERATE_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(GENERATE_SPEC));
    return 0;
  }
  const { values } = parsed;
  const prompt = values['prompt'] as string;
  const { model, tok, sample } = await session(values, log);
  try {
    const ids = tok.encode(prompt);
    const stop = tok.eosTokenId === undefined ? [] : [tok.eosTokenId];
    process.stdout.write(`${prompt}${tok.decode(await sample(ids, stop, '--prompt'))}\n`);
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
  const parsed = parseOptions(CHAT_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(CHAT_SPEC));
    return 0;
  }
  const { values } = parsed;
  const { model, tok, sample } = await session(values, log);
  const template = tok.chatTemplate ?? CHATML_TEMPLATE;
  const stop = [tok.eosTokenId, tok.tokenToId('<|im_end|>')].filter(
    (x): x is number => x !== undefined,
  );
  const system = values['system'] as string | undefined;
  const messages: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
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
        .decode(
          await sample(
            tok.encode(text, { addSpecialTokens: false }),
            stop,
            'the conversation so far',
          ),
        )
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
