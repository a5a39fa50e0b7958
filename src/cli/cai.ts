import { loadCaiConfig } from '../cai/config.js';
import { type CaiStage, runCai } from '../cai/pipeline.js';
import { TroupeError } from '../errors.js';
import { type CommandSpec, parseCommand } from './options.js';
import { EXIT_INTERRUPTED, stopOnCtrlC, terminalEvents } from './train.js';

export const CAI_SPEC: CommandSpec = {
  name: 'cai',
  summary:
    'Constitutional AI: SL-CAI (critique → revision → SFT) then RL-CAI (AI-labelled pairs → soft-label reward model → PPO), resumable',
  options: [
    {
      name: 'config',
      type: 'string',
      value: 'cai.yaml',
      required: true,
      help: 'the CAI config (YAML)',
    },
    {
      name: 'resume',
      type: 'boolean',
      help: "continue the run in the config's output directory: finished stages are skipped, the one under way resumes",
    },
  ],
  rest: '[sl|rl|all] [--section.key value …]',
  notes: [
    'sl: revisions of red-team answers (sl-data/), then SFT of the policy on them (sft/). rl: response pairs of the SL-CAI model labelled by the feedback model (rl-data/), a reward model on the soft labels (rm/), PPO against it (ppo/). all (the default): the stages the config has. docs/cai.md describes the config and every file a run writes.',
    'Ctrl-C stops after the batch or step under way (checkpointed) and exits 130; the same command with --resume continues.',
  ],
};

const STAGES: Readonly<Record<string, readonly CaiStage[] | undefined>> = {
  sl: ['sl'],
  rl: ['rl'],
  all: undefined,
};

/** `troupe cai [sl|rl|all] --config cai.yaml [--resume] [overrides]`. */
export async function runCaiCommand(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseCommand(CAI_SPEC, args, { positionals: true });
  if (!parsed) return 0;
  const { overrides } = parsed;
  const [which = 'all', ...extra] = parsed.positionals;
  if (!(which in STAGES) || extra.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `troupe cai: unknown stage '${[which, ...extra].join(' ')}'. Known: sl, rl, all.`,
    );
  }
  const file = parsed.values['config'] as string;
  const config = await loadCaiConfig({ file, overrides });
  const ctrlC = stopOnCtrlC(log, 'stopping after this batch or step, which is then checkpointed…');
  const { events, progress } = terminalEvents();
  try {
    const r = await runCai(config, {
      file,
      resume: parsed.values['resume'] === true,
      signal: ctrlC.signal,
      events,
      stages: STAGES[which],
    });
    progress.finish();
    if (r.aborted) {
      log(`interrupted; run directory ${r.runDir}; continue with --resume`);
      return EXIT_INTERRUPTED;
    }
    log(`done: run directory ${r.runDir} (stages.json, log.txt; each stage's report.html)`);
    for (const [stage, s] of Object.entries(r.stages)) log(`  ${stage}: ${JSON.stringify(s)}`);
    return 0;
  } finally {
    progress.finish();
    ctrlC.dispose();
  }
}
