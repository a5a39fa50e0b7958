import { parseArgs } from 'node:util';
import { type TrainOptions, type TrainResult, trainLm } from '../algorithms/lm.js';
import { trainPreference } from '../algorithms/preference.js';
import { trainRl } from '../algorithms/rl.js';
import { configToYaml, loadConfig, splitOverrides } from '../config/load.js';
import type { DpoConfig, LmConfig, RlConfig, RmConfig } from '../config/schema.js';
import { TroupeError } from '../errors.js';
import { formatValue } from '../train/format.js';
import { ProgressReporter } from './progress-reporter.js';

export const TRAIN_USAGE = (algo: string) =>
  `troupe ${algo} --config run.yaml [--resume] [--section.key value …]`;

/** Renders a trainer's events on the terminal: a progress line, eval results, actor warnings. */
export function terminalEvents(out: NodeJS.WriteStream = process.stderr) {
  const progress = new ProgressReporter({ stream: out });
  return {
    progress,
    events: {
      onProgress: (s: Parameters<ProgressReporter['update']>[0]) => progress.update(s),
      onMetrics: (split: 'train' | 'eval', step: number, v: Readonly<Record<string, number>>) => {
        if (split !== 'eval') return;
        const parts = Object.entries(v).map(([k, x]) => `${k} ${formatValue(x)}`);
        out.write(`${out.isTTY ? '\n' : ''}eval @ step ${step}: ${parts.join(', ')}\n`);
      },
      onLog: (r: { level: string; actor: string; message: string }) => {
        if (r.level === 'warn' || r.level === 'error')
          out.write(`[${r.actor}] ${r.level}: ${r.message}\n`);
        // The trainer's own notes: which model a path led to, what a LoRA start does.
        else if (r.actor === 'trainer' && r.level === 'info') out.write(`${r.message}\n`);
      },
    },
  };
}

export type Algorithm = 'pretrain' | 'sft' | 'rm' | 'dpo' | 'ppo' | 'grpo' | 'rloo' | 'reinforce';

/** The trainer of each algorithm. */
export function trainerFor(
  algorithm: Algorithm,
): (config: never, opts: TrainOptions) => Promise<TrainResult> {
  if (algorithm === 'rm' || algorithm === 'dpo')
    return (c: RmConfig | DpoConfig, o: TrainOptions) => trainPreference(c, o);
  if (algorithm === 'pretrain' || algorithm === 'sft')
    return (c: LmConfig, o: TrainOptions) => trainLm(c, o);
  return (c: RlConfig, o: TrainOptions) => trainRl(c, o);
}

/** The final eval in one line: the loss (and perplexity) or, for RL, the reward. */
function finalEvalLine(e: Readonly<Record<string, number>>): string {
  return Object.entries(e)
    .filter(([k]) => ['loss', 'perplexity', 'reward', 'accuracy'].some((x) => k.startsWith(x)))
    .map(([k, v]) => `${k} ${formatValue(v)}`)
    .join(', ');
}

/** `troupe pretrain|sft|rm|dpo`: load and validate the config, train, report where everything went. */
export async function runTrain(
  algorithm: Algorithm,
  args: string[],
  log: (line: string) => void,
): Promise<number> {
  const { rest, overrides } = splitOverrides(args, new Set(['config', 'resume']));
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string' }, resume: { type: 'boolean', default: false } },
    strict: true,
  });
  if (!values.config && overrides.length === 0) {
    throw new TroupeError('BAD_ARGUMENT', `--config is required. Usage: ${TRAIN_USAGE(algorithm)}`);
  }
  const config = await loadConfig<LmConfig | RmConfig | DpoConfig | RlConfig>(algorithm, {
    file: values.config,
    overrides,
  });
  const ac = new AbortController();
  const stop = () => {
    log('\nstopping after this step (Ctrl-C again to kill)…');
    ac.abort();
    process.off('SIGINT', stop);
  };
  process.on('SIGINT', stop);
  const { events, progress } = terminalEvents();
  try {
    log(
      `${algorithm}: ${config.train.steps} steps → ${config.output}${values.resume ? ' (resuming)' : ''}`,
    );
    const r = await trainerFor(algorithm)(config as never, {
      resume: values.resume,
      signal: ac.signal,
      events,
    });
    progress.finish();
    log(`done: ${r.steps} steps; run directory ${r.runDir} (metrics.jsonl, report.html)`);
    if (r.finalEval) log(`final eval: ${finalEvalLine(r.finalEval)}`);
    if (r.checkpoint) log(`checkpoint: ${r.checkpoint}`);
    return 0;
  } finally {
    process.off('SIGINT', stop);
  }
}

/** `troupe config show --algorithm NAME [--config FILE] [overrides]`: the resolved config. */
export async function runConfigShow(args: string[]): Promise<number> {
  const [sub, ...rest0] = args;
  if (sub !== 'show')
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Usage: troupe config show --algorithm pretrain|sft [--config run.yaml] [--section.key value …]`,
    );
  const { rest, overrides } = splitOverrides(rest0, new Set(['config', 'algorithm']));
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string' }, algorithm: { type: 'string' } },
    strict: true,
  });
  const algorithm = values.algorithm ?? (await algorithmOf(values.config));
  const config = await loadConfig(algorithm, { file: values.config, overrides });
  process.stdout.write(configToYaml(config));
  return 0;
}

async function algorithmOf(file: string | undefined): Promise<string> {
  if (!file)
    throw new TroupeError(
      'BAD_ARGUMENT',
      'config show needs --algorithm or a --config whose `algorithm` says it',
    );
  const { readFile } = await import('node:fs/promises');
  const { parse } = await import('yaml');
  const a = (parse(await readFile(file, 'utf8')) as { algorithm?: string } | null)?.algorithm;
  if (!a) throw new TroupeError('BAD_ARGUMENT', `${file} has no 'algorithm'; pass --algorithm`);
  return a;
}
