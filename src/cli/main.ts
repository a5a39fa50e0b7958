#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { DEMO_USAGE, runDemo } from './demo.js';
import { formatDoctor, runDoctor } from './doctor.js';
import { CHAT_USAGE, GENERATE_USAGE, runChat, runGenerate } from './generate.js';
import { LOGPROBS_USAGE, runLogprobs } from './logprobs.js';
import { MERGE_USAGE, runMerge } from './merge.js';
import { runTokenizer, TOKENIZER_USAGE } from './tokenizer.js';
import { runConfigShow, runTrain, TRAIN_USAGE } from './train.js';

/** A `troupe` sub-command: typed data, looked up by name. */
interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

const err = (line: string) => process.stderr.write(`${line}\n`);

const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  [
    'demo',
    {
      summary:
        'the built-in end-to-end job: tokenizer + pretraining on shipped text, eval, a sample',
      usage: DEMO_USAGE,
      run: (args) => runDemo(args, err),
    },
  ],
  [
    'pretrain',
    {
      summary: 'next-token pretraining on packed text (data parallel, resumable)',
      usage: TRAIN_USAGE('pretrain'),
      run: (args) => runTrain('pretrain', args, err),
    },
  ],
  [
    'sft',
    {
      summary: 'supervised fine-tuning on prompt/completion or chat data (full or LoRA)',
      usage: TRAIN_USAGE('sft'),
      run: (args) => runTrain('sft', args, err),
    },
  ],
  [
    'rm',
    {
      summary: 'reward model (Bradley–Terry on a score head) from preference pairs',
      usage: TRAIN_USAGE('rm'),
      run: (args) => runTrain('rm', args, err),
    },
  ],
  [
    'dpo',
    {
      summary: 'DPO and its family (cDPO, IPO, SimPO, ORPO) on preference pairs',
      usage: TRAIN_USAGE('dpo'),
      run: (args) => runTrain('dpo', args, err),
    },
  ],
  ...(
    [
      [
        'ppo',
        'PPO with a critic (GAE) and a KL penalty in the reward, on prompts and your rewards',
      ],
      ['grpo', 'GRPO: group-normalised advantages over n samples per prompt, KL as a loss term'],
      ['rloo', 'RLOO: leave-one-out baseline over n samples per prompt'],
      ['reinforce', 'REINFORCE++ (or -baseline): whitened returns, token-level KL in the reward'],
    ] as const
  ).map(
    ([name, summary]) =>
      [
        name,
        { summary, usage: TRAIN_USAGE(name), run: (args: string[]) => runTrain(name, args, err) },
      ] as const,
  ),
  [
    'config',
    {
      summary: 'show the resolved config of a run, every default filled in',
      usage:
        'troupe config show --algorithm pretrain|sft|rm|dpo|ppo|grpo|rloo|reinforce [--config run.yaml] [--section.key value …]',
      run: (args) => runConfigShow(args),
    },
  ],
  [
    'generate',
    {
      summary: 'sample a completion from a saved model',
      usage: GENERATE_USAGE,
      run: (args) => runGenerate(args, err),
    },
  ],
  [
    'chat',
    {
      summary: 'talk to a saved model through its chat template',
      usage: CHAT_USAGE,
      run: (args) => runChat(args, err),
    },
  ],
  [
    'merge',
    {
      summary:
        'a LoRA checkpoint (or a run) as a plain Hugging Face model: base + adapter merged, tokenizer copied',
      usage: MERGE_USAGE,
      run: (args) => runMerge(args, err),
    },
  ],
  [
    'doctor',
    {
      summary: 'backends available, the one auto picks, threads, matmul GFLOP/s per backend',
      usage: 'troupe doctor [--json] [--no-measure]',
      async run(args) {
        const { values } = parseArgs({
          args,
          options: {
            json: { type: 'boolean', default: false },
            'no-measure': { type: 'boolean', default: false },
          },
          strict: true,
        });
        const report = await runDoctor({ measure: !values['no-measure'] });
        process.stdout.write(
          values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`,
        );
        return 0;
      },
    },
  ],
  [
    'logprobs',
    {
      summary:
        'per-token log-probs and totals of JSONL token rows under a model (scoring, perplexity)',
      usage: LOGPROBS_USAGE,
      run: (args) => runLogprobs(args, (line) => process.stderr.write(`${line}\n`)),
    },
  ],
  [
    'tokenizer',
    {
      summary:
        'train a tokenizer (byte-level BPE, WordPiece, Unigram), or JSONL text ↔ token ids (train, encode, decode)',
      usage: TOKENIZER_USAGE,
      run: (args) => runTokenizer(args, (line) => process.stderr.write(`${line}\n`)),
    },
  ],
]);

function help(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((k) => k.length));
  return [
    'troupe: actor-model RLHF on Node.js worker threads',
    '',
    'Commands:',
    ...[...COMMANDS].map(
      ([name, c]) =>
        `  ${name.padEnd(width)}  ${c.summary}\n  ${''.padEnd(width)}  usage: ${c.usage}`,
    ),
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help());
    return 0;
  }
  const command = COMMANDS.get(name);
  if (!command) {
    process.stderr.write(
      `troupe: unknown command '${name}'. Known: ${[...COMMANDS.keys()].join(', ')}.\n`,
    );
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    process.stderr.write(`troupe ${name}: ${err.code ? `[${err.code}] ` : ''}${err.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
