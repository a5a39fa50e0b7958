#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { formatDoctor, runDoctor } from './doctor.js';
import { LOGPROBS_USAGE, runLogprobs } from './logprobs.js';
import { runTokenizer, TOKENIZER_USAGE } from './tokenizer.js';

/** A `troupe` sub-command: typed data, looked up by name. */
interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: string[]): Promise<number>;
}

const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
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
      summary: 'JSONL text ↔ token ids with a tokenizer.json (encode, decode)',
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
