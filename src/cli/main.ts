#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ALGORITHMS, LiveMap } from '../algorithms/registry.js';
import { runSweepCommand, SWEEP_SPEC } from '../scaling/cli.js';
import { CAI_SPEC, runCaiCommand } from './cai.js';
import { DEMO_SPEC, runDemo } from './demo.js';
import { formatDoctor, runDoctor } from './doctor.js';
import { formatMemoryReport, memoryReport } from './doctor-memory.js';
import { CHAT_SPEC, GENERATE_SPEC, runChat, runGenerate } from './generate.js';
import { LOGPROBS_SPEC, runLogprobs } from './logprobs.js';
import { MERGE_SPEC, runMerge } from './merge.js';
import { type CommandSpec, helpOf, parseOptions, usageOf, wantsHelp } from './options.js';
import { REPORT_SPEC, runReport } from './report.js';
import { runTokenizer, TOKENIZER_USAGE, tokenizerHelp } from './tokenizer.js';
import { configShowSpec, runConfigShow, runTrain, trainSpec } from './train.js';

/**
 * A `troupe` sub-command: typed data, looked up by name. `troupe NAME --help` (or `-h`) prints
 * `help(args)` — or, for a command without one, its summary and usage — and exits 0.
 */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  help?(args: readonly string[]): string;
  run(args: string[]): Promise<number>;
}

const err = (line: string) => process.stderr.write(`${line}\n`);

/** A command whose options are a table: its usage line and --help are made from the table. */
const fromSpec = (spec: CommandSpec, run: (args: string[]) => Promise<number>): Command => ({
  summary: spec.summary,
  usage: usageOf(spec),
  help: () => helpOf(spec),
  run,
});

const DOCTOR_SPEC: CommandSpec = {
  name: 'doctor',
  summary:
    'what this machine can run: backends (and what to install), the one auto picks, threads, native kernels, matmul GFLOP/s per backend',
  options: [
    { name: 'json', type: 'boolean', help: 'the same report as JSON' },
    { name: 'no-measure', type: 'boolean', help: 'skip the matmul measurement' },
    {
      name: 'model',
      type: 'string',
      help: 'a checkpoint directory: predict the memory of running it (weights, gradients, AdamW, activations, KV cache) against the wasm heap and host memory; reads config.json only',
    },
    { name: 'batch', type: 'string', help: 'with --model: rows per step (default 1)' },
    { name: 'seq', type: 'string', help: 'with --model: tokens per row (default 512)' },
    {
      name: 'precision',
      type: 'string',
      help: 'with --model: fp32 (default) or bf16: frozen models (forward, generator, reference) hold bf16 matrices',
    },
  ],
};

async function doctor(args: string[]): Promise<number> {
  const parsed = parseOptions(DOCTOR_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(DOCTOR_SPEC));
    return 0;
  }
  const model = parsed.values['model'];
  if (typeof model === 'string') {
    const num = (k: string) =>
      parsed.values[k] === undefined ? undefined : Number(parsed.values[k]);
    const precision = parsed.values['precision'];
    const r = await memoryReport(model, {
      batch: num('batch'),
      seq: num('seq'),
      ...(typeof precision === 'string' ? { precision } : {}),
    });
    process.stdout.write(
      parsed.values['json'] ? `${JSON.stringify(r, null, 2)}\n` : `${formatMemoryReport(r)}\n`,
    );
    return 0;
  }
  const report = await runDoctor({ measure: parsed.values['no-measure'] !== true });
  process.stdout.write(
    parsed.values['json'] ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`,
  );
  return 0;
}

/** The commands before and after the training ones, in the order `troupe --help` lists them. */
const BEFORE: readonly (readonly [string, Command])[] = [
  ['demo', fromSpec(DEMO_SPEC, (args) => runDemo(args, err))],
];
const AFTER: readonly (readonly [string, Command])[] = [
  ['generate', fromSpec(GENERATE_SPEC, (args) => runGenerate(args, err))],
  ['chat', fromSpec(CHAT_SPEC, (args) => runChat(args, err))],
  ['merge', fromSpec(MERGE_SPEC, (args) => runMerge(args, err))],
  ['doctor', fromSpec(DOCTOR_SPEC, doctor)],
  ['logprobs', fromSpec(LOGPROBS_SPEC, (args) => runLogprobs(args, err))],
  [
    'tokenizer',
    {
      summary:
        'train a tokenizer (byte-level BPE, WordPiece, Unigram), or JSONL text ↔ token ids (train, encode, decode)',
      usage: TOKENIZER_USAGE,
      help: tokenizerHelp,
      run: (args) => runTokenizer(args, err),
    },
  ],
  ['cai', fromSpec(CAI_SPEC, (args) => runCaiCommand(args, err))],
  ['report', fromSpec(REPORT_SPEC, (args) => runReport(args, err))],
  ['sweep', fromSpec(SWEEP_SPEC, (args) => runSweepCommand(args, err))],
];

/** `troupe <algorithm>`: one command per entry of the ALGORITHMS registry. */
const trainCommand = (a: string): Command => ({
  get summary() {
    return trainSpec(a).summary;
  },
  get usage() {
    return usageOf(trainSpec(a));
  },
  help: () => helpOf(trainSpec(a)),
  run: (args) => runTrain(a, args, err),
});

/**
 * Every command, in the order `troupe --help` lists them: demo, one per algorithm (read from the
 * ALGORITHMS registry at each access, so that an algorithm registered later is listed and runs),
 * then the rest.
 */
export const COMMANDS: ReadonlyMap<string, Command> = new LiveMap(() => [
  ...BEFORE,
  ...[...ALGORITHMS.keys()].map((a) => [a, trainCommand(a)] as const),
  // Its --algorithm lists the algorithms, so it is made at each access too.
  ['config', fromSpec(configShowSpec(), (args) => runConfigShow(args))] as const,
  ...AFTER,
]);

/** The package's version, from its package.json (beside `src/` and `dist/`). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return String(pkg.version);
}

function help(): string {
  const width = Math.max(...[...COMMANDS.keys()].map((k) => k.length));
  return [
    'troupe: actor-model RLHF on Node.js worker threads',
    '',
    'usage: troupe COMMAND [options]    troupe COMMAND --help    troupe --version',
    '',
    'Commands:',
    ...[...COMMANDS].map(
      ([name, c]) =>
        `  ${name.padEnd(width)}  ${c.summary}\n  ${''.padEnd(width)}  usage: ${c.usage}`,
    ),
    '',
  ].join('\n');
}

/**
 * `troupe ARGS…`: the exit status. 0 done; 1 failed (the error on stderr); 2 an unknown
 * command; 130 a run stopped by Ctrl-C (checkpointed, resumable).
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`troupe ${version()}\n`);
    return 0;
  }
  const command = COMMANDS.get(name);
  if (!command) {
    process.stderr.write(
      `troupe: unknown command '${name}'. Known: ${[...COMMANDS.keys()].join(', ')}.\n`,
    );
    return 2;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(command.help?.(rest) ?? `usage: ${command.usage}\n\n${command.summary}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    process.stderr.write(`troupe ${name}: ${err.code ? `[${err.code}] ` : ''}${err.message}\n`);
    return 1;
  }
}

/** Run when this file is the program (`troupe`, `node dist/cli/main.js`), not when imported. */
function isProgram(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (isProgram()) process.exitCode = await main(process.argv.slice(2));
