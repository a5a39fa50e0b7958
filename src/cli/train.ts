import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describePlacement, type PlacedConfig } from '../algorithms/launch.js';
import {
  type AlgorithmName,
  algorithmEntry,
  ALGORITHMS as REGISTRY,
} from '../algorithms/registry.js';
import { placementOf } from '../algorithms/topologies.js';
import { configFields, defaultConfig, defaultConfigYaml } from '../config/defaults.js';
import { configToYaml, loadConfig } from '../config/load.js';
import type { DpoConfig, LmConfig, RlConfig, RmConfig } from '../config/schema.js';
import { TroupeError } from '../errors.js';
import { formatValue } from '../train/format.js';
import { type CommandSpec, parseCommand, usageOf } from './options.js';
import { ProgressReporter } from './progress-reporter.js';

/** A built-in algorithm's name (a registered one is any name ALGORITHMS holds). */
export type Algorithm = AlgorithmName;

/**
 * The training commands when this module loaded, in the order `troupe --help` lists them: the
 * ALGORITHMS registry's names. The commands themselves read the registry as they run, so an
 * algorithm registered later is a command too.
 */
export const ALGORITHMS = [...REGISTRY.keys()] as Algorithm[];

/** Exit status of a run that Ctrl-C (or an abort) stopped, as shells report SIGINT: 128 + 2. */
export const EXIT_INTERRUPTED = 130;

/** The config fields of an algorithm, one line per section: what `--section.key` can set. */
function fieldLines(algorithm: string): string[] {
  const sections = new Map<string, string[]>();
  for (const f of configFields(algorithmEntry(algorithm).schema)) {
    if (f.path === 'algorithm') continue;
    const [head, ...tail] = f.path.split('.');
    const within = f.path.split('.').slice(0, -1).join('.');
    const required = f.required
      ? f.inOptional
        ? ` (required with ${within})`
        : ' (required)'
      : '';
    const name = `${tail.join('.') || head}${required}`;
    const key = tail.length === 0 ? '' : head;
    sections.set(key, [...(sections.get(key) ?? []), name]);
  }
  const width = Math.max(...[...sections.keys()].map((k) => k.length));
  return [...sections].map(
    ([k, names]) => `  ${(k || '(top)').padEnd(Math.max(width, 5))}  ${names.join(', ')}`,
  );
}

/** `troupe <algorithm>`: its options, and the config fields that can be overridden. */
export function trainSpec(algorithm: string): CommandSpec {
  return {
    name: algorithm,
    summary: algorithmEntry(algorithm).summary,
    options: [
      { name: 'config', type: 'string', value: 'run.yaml', help: 'the run config (YAML)' },
      {
        name: 'resume',
        type: 'boolean',
        help: "continue the run in the config's output directory from its latest checkpoint",
      },
    ],
    rest: '[--section.key value …]',
    notes: [
      `Any config field can be set on the command line, over the file: --output runs/x --train.steps 50 --optim.lr 1e-3 (or --key=value). Without --config, the fields marked required must all be given so. \`troupe config show --algorithm ${algorithm}\` prints every default.`,
      `Config fields of ${algorithm}, by section:\n${fieldLines(algorithm).join('\n')}`,
      'Ctrl-C finishes the step under way, saves a checkpoint and exits 130; the same command with --resume continues from it (Ctrl-C twice kills at once). A failed run exits 1 and writes the error to log.txt in the run directory, and report.html as far as it got.',
    ],
  };
}

export const TRAIN_USAGE = (algo: string) => usageOf(trainSpec(algo));

/**
 * The first Ctrl-C aborts the returned signal (the run stops after the step under way and
 * checkpoints it), saying so after `Ctrl-C: `; a second one is Node's own, which kills. Call
 * `dispose` when the run is over.
 */
export function stopOnCtrlC(
  log: (line: string) => void,
  says = 'stopping after this step, which is then checkpointed (Ctrl-C again to kill)…',
): { readonly signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const stop = () => {
    log(`\nCtrl-C: ${says}`);
    ac.abort();
    process.off('SIGINT', stop);
  };
  process.on('SIGINT', stop);
  return { signal: ac.signal, dispose: () => process.off('SIGINT', stop) };
}

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

/** The final eval in one line: the loss (and perplexity) or, for RL, the reward. */
function finalEvalLine(e: Readonly<Record<string, number>>): string {
  return Object.entries(e)
    .filter(([k]) => ['loss', 'perplexity', 'reward', 'accuracy'].some((x) => k.startsWith(x)))
    .map(([k, v]) => `${k} ${formatValue(v)}`)
    .join(', ');
}

/** An argument as a shell would need it typed again (`runs/x` as is, `my run` quoted). */
function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`;
}

/**
 * `troupe <algorithm>`: load and validate the config, train, report where everything went.
 * Ctrl-C stops after the step under way, which is checkpointed: the exit status is then 130
 * and the command to continue is printed. A failure points at the run's log.txt.
 */
export async function runTrain(
  algorithm: string,
  args: string[],
  log: (line: string) => void,
): Promise<number> {
  const spec = trainSpec(algorithm);
  const parsed = parseCommand(spec, args);
  if (!parsed) return 0;
  const { overrides } = parsed;
  const values = parsed.values as { config?: string; resume?: boolean };
  if (!values.config && overrides.length === 0) {
    throw new TroupeError('BAD_ARGUMENT', `--config is required. Usage: ${usageOf(spec)}`);
  }
  const config = await loadConfig<LmConfig | RmConfig | DpoConfig | RlConfig>(algorithm, {
    file: values.config,
    overrides,
  });
  const ctrlC = stopOnCtrlC(log);
  const { events, progress } = terminalEvents();
  try {
    log(
      `${algorithm}: ${config.train.steps} steps → ${config.output}${values.resume ? ' (resuming)' : ''}`,
    );
    const r = await algorithmEntry(algorithm).train(config as never, {
      resume: values.resume,
      signal: ctrlC.signal,
      events,
    });
    progress.finish();
    const evalLine = r.finalEval
      ? `${r.aborted ? 'last' : 'final'} eval (step ${r.finalEvalStep}): ${finalEvalLine(r.finalEval)}`
      : undefined;
    if (r.aborted) {
      log(`interrupted after step ${r.steps} of ${config.train.steps}; run directory ${r.runDir}`);
      if (evalLine) log(evalLine);
      if (r.checkpoint) {
        log(`checkpoint: ${r.checkpoint}`);
        const again = [...args.filter((a) => a !== '--resume'), '--resume'].map(shellQuote);
        log(`resume with: troupe ${algorithm} ${again.join(' ')}`);
      } else log('no checkpoint was written (stopped before the first step): nothing to resume');
      return EXIT_INTERRUPTED;
    }
    log(`done: ${r.steps} steps; run directory ${r.runDir} (metrics.jsonl, report.html)`);
    if (evalLine) log(evalLine);
    if (r.checkpoint) log(`checkpoint: ${r.checkpoint}`);
    return 0;
  } catch (e) {
    progress.finish();
    if (existsSync(join(config.output, 'log.txt')))
      log(`the run failed: the error is in ${join(config.output, 'log.txt')} (and report.html)`);
    throw e;
  } finally {
    ctrlC.dispose();
  }
}

/** `troupe config show`: the resolved config of a run, or an algorithm's defaults. */
export function configShowSpec(): CommandSpec {
  return {
    name: 'config show',
    summary:
      "the resolved config of a run, every default filled in; with --algorithm alone, that algorithm's defaults and what a config must give",
    options: [
      {
        name: 'algorithm',
        type: 'string',
        value: [...REGISTRY.keys()].join('|'),
        help: "the algorithm (default: the config's own `algorithm`)",
      },
      { name: 'config', type: 'string', value: 'run.yaml', help: 'the run config (YAML)' },
    ],
    rest: '[--section.key value …]',
  };
}

/** `troupe config <sub-command>`: show. */
export const CONFIG_COMMANDS: ReadonlyMap<string, () => CommandSpec> = new Map([
  ['show', configShowSpec],
]);

/** `troupe config show --algorithm NAME [--config FILE] [overrides]`: the resolved config. */
export async function runConfigShow(args: string[]): Promise<number> {
  const [sub, ...rest0] = args;
  const spec = configShowSpec();
  if (!sub || !CONFIG_COMMANDS.has(sub))
    throw new TroupeError(
      'BAD_ARGUMENT',
      `Unknown config command '${sub ?? ''}'. Known: ${[...CONFIG_COMMANDS.keys()].join(', ')}. Usage: ${usageOf(spec)}`,
    );
  const parsed = parseCommand(spec, rest0);
  if (!parsed) return 0;
  const { overrides } = parsed;
  const values = parsed.values as { config?: string; algorithm?: string };
  const algorithm = values.algorithm ?? (await algorithmOf(values.config));
  if (!values.config && overrides.length === 0) {
    const yaml = defaultConfigYaml(algorithm);
    process.stdout.write(`${yaml}${placementComment(defaultConfig(algorithm).config)}`);
    return 0;
  }
  const config = await loadConfig(algorithm, { file: values.config, overrides });
  process.stdout.write(`${configToYaml(config)}${placementComment(config)}`);
  return 0;
}

/**
 * Where the run's actors will run, `actors.*` resolved (a thread per line), as YAML comments so
 * that the output stays a config the loader takes back.
 */
function placementComment(config: unknown): string {
  const lines = describePlacement(placementOf(config as PlacedConfig));
  return `# Placement (actors.*, every default resolved), one thread per line:\n${lines.map((l) => `#   ${l}\n`).join('')}`;
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
