import { join } from 'node:path';
import { type CommandSpec, parseCommand } from '../cli/options.js';
import { EXIT_INTERRUPTED, stopOnCtrlC, terminalEvents } from '../cli/train.js';
import { TroupeError } from '../errors.js';
import { analyzeSweep, type ScalingAnalysis } from './analyze.js';
import { loadSweepConfig, type SweepConfig } from './config.js';
import { fmt, writeScalingReport } from './report.js';
import { runSweep } from './sweep.js';
import { RESULTS_CSV, readTable, type SweepRow } from './table.js';

/** `troupe sweep`: run (or continue) a scaling-law sweep, fit it, write its report. */
export const SWEEP_SPEC: CommandSpec = {
  name: 'sweep',
  summary:
    'a scaling-law sweep: pretraining jobs over model sizes × compute (IsoFLOP) or token budgets, resumable job by job, then Chinchilla approaches 2 and 3 and Kaplan fits with bootstrap intervals, and report.html',
  options: [
    {
      name: 'config',
      type: 'string',
      value: 'sweep.yaml',
      required: true,
      help: 'the sweep config (YAML)',
    },
    {
      name: 'fit-only',
      type: 'boolean',
      help: 'fit and report the jobs already finished (results.json), training nothing',
    },
  ],
  rest: '[--key value …]',
  notes: [
    'The same command continues a sweep: finished jobs (jobs/<id>/result.json) are skipped, an interrupted one resumes from its latest checkpoint. Ctrl-C checkpoints the job under way and exits 130.',
    'Any field of the sweep config can be set on the command line: --output runs/s2 --fit.bootstrap 500 --pretrain.optim.lr 2e-3.',
    'Writes into output: results.csv and results.json (N, non-embedding N, D, C, final eval loss per job), fits.json, report.html and svg/*.svg. docs/scaling.md explains the fits.',
  ],
};

/** The fits of a sweep's rows with its config's fit options. */
export function analyzeWith(sweep: SweepConfig, rows: readonly SweepRow[]): ScalingAnalysis {
  return analyzeSweep(rows, {
    parameters: sweep.parameters,
    delta: sweep.fit.delta,
    bootstrap: sweep.fit.bootstrap,
    seed: sweep.fit.seed,
    confidence: sweep.fit.confidence,
    isoflopWindow: sweep.fit.isoflopWindow ?? undefined,
  });
}

/** The fitted figures in a few lines for the terminal. */
export function summaryLines(an: ScalingAnalysis): string[] {
  const ci = (k: string) => {
    const v = an.intervals?.intervals[k];
    return v ? ` [${fmt(v[0])}, ${fmt(v[1])}]` : '';
  };
  const l = an.approach3.law;
  const lines = [
    `approach 3: L(N, D) = ${fmt(l.E)} + ${fmt(l.A)}/N^${fmt(l.alpha)} + ${fmt(l.B)}/D^${fmt(l.beta)}`,
    `  α ${fmt(l.alpha)}${ci('alpha')}, β ${fmt(l.beta)}${ci('beta')}, E ${fmt(l.E)}${ci('E')}; N_opt ∝ C^a, a ${fmt(an.approach3.a)}${ci('a')}, b ${fmt(an.approach3.b)}${ci('b')}`,
  ];
  if (an.approach2?.nOpt)
    lines.push(`approach 2: a ${fmt(an.approach2.nOpt.exponent)}${ci('approach2.a')}`);
  for (const x of an.optimal)
    lines.push(
      `  C ${fmt(x.c)}: N_opt ${fmt(x.nOpt)}, D_opt ${fmt(x.dOpt)}, ${fmt(x.tokensPerParam)} tokens/parameter`,
    );
  const ex = an.extrapolation;
  if (ex)
    lines.push(
      `largest budget (C ${fmt(ex.heldOut)}) held out: mean |error| ${fmt(100 * ex.meanAbsRelError)} % (max ${fmt(100 * ex.maxAbsRelError)} %) over its ${ex.jobs.length} jobs`,
    );
  return lines;
}

export async function runSweepCommand(
  args: string[],
  log: (line: string) => void,
): Promise<number> {
  const parsed = parseCommand(SWEEP_SPEC, args);
  if (!parsed) return 0;
  const sweep = await loadSweepConfig(parsed.values['config'] as string, parsed.overrides);
  let rows: readonly SweepRow[];
  if (parsed.values['fit-only'] === true) {
    rows = (await readTable(sweep.output)).rows;
  } else {
    const ctrlC = stopOnCtrlC(log);
    const { events, progress } = terminalEvents();
    try {
      const r = await runSweep(sweep, {
        signal: ctrlC.signal,
        events: {
          job: events,
          onJob: (j, i, n, how) =>
            log(
              `[${i + 1}/${n}] ${j.id}: ${how === 'skip' ? 'done before, skipped' : `${how === 'resume' ? 'resuming' : 'training'} N ${fmt(j.params.total)} (non-embedding ${fmt(j.params.nonEmbedding)}), D ${fmt(j.tokens)} tokens, ${j.steps} steps, C ${fmt(j.flops)}`}`,
            ),
          onJobDone: (row) => {
            progress.finish();
            log(`  ${row.id}: eval loss ${fmt(row.loss, 4)} (${fmt(row.seconds)} s)`);
          },
        },
      });
      progress.finish();
      if (r.aborted) {
        log(
          `interrupted: ${r.rows.length} of ${r.jobs.length} jobs done; the same command continues the sweep`,
        );
        return EXIT_INTERRUPTED;
      }
      rows = r.rows;
    } finally {
      ctrlC.dispose();
    }
  }
  if (rows.length < 5) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${sweep.output}: ${rows.length} finished job${rows.length === 1 ? '' : 's'}; the fits need at least 5`,
    );
  }
  const an = analyzeWith(sweep, rows);
  const report = await writeScalingReport(
    sweep.output,
    rows,
    an,
    `Scaling-law sweep: ${sweep.output}`,
  );
  for (const line of summaryLines(an)) log(line);
  log(
    `table: ${join(sweep.output, RESULTS_CSV)}; fits: ${join(sweep.output, 'fits.json')}; report: ${report}`,
  );
  return 0;
}
