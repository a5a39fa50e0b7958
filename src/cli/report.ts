import { existsSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { TroupeError } from '../errors.js';
import { METRICS_FILE, REPORT_FILE } from '../train/files.js';
import { type RunInput, readRun, renderRuns, writeReport } from '../train/report.js';
import { writeFileAtomic } from '../util/atomic.js';
import { type CommandSpec, helpOf, parseOptions } from './options.js';

export const REPORT_SPEC: CommandSpec = {
  name: 'report',
  summary:
    "a run's report.html written anew from its metrics.jsonl, or several runs overlaid in one report",
  options: [
    {
      name: 'output',
      short: 'o',
      type: 'string',
      value: 'FILE',
      help: `where to write it (default: RUN_DIR/${REPORT_FILE} for one run, ./${REPORT_FILE} for several)`,
    },
    { name: 'title', type: 'string', value: 'TEXT', help: 'the page title' },
  ],
  rest: 'RUN_DIR…',
  notes: [
    'Each run gets a colour (eval dashed beside train); every chart can be read against the step or the wall time.',
  ],
};

/** The run directories given, checked, with names for the legends (unique: paths where the names clash). */
function runDirs(positionals: readonly string[]): Array<{ dir: string; name: string }> {
  const dirs = positionals.map((p) => resolve(p));
  for (const [i, dir] of dirs.entries()) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new TroupeError('BAD_ARGUMENT', `${positionals[i]}: no such run directory`, {
        details: { dir },
      });
    }
    if (!existsSync(join(dir, METRICS_FILE))) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${positionals[i]} has no ${METRICS_FILE}: not a Troupe run directory (or a run that logged nothing yet)`,
        { details: { dir } },
      );
    }
  }
  const names = dirs.map((d) => basename(d));
  return dirs.map((dir, i) => ({
    dir,
    name:
      names.filter((n) => n === names[i]).length > 1
        ? relative(process.cwd(), dir) || dir
        : names[i]!,
  }));
}

/** `troupe report RUN_DIR… [--output FILE] [--title TEXT]`. */
export async function runReport(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseOptions(REPORT_SPEC, args, { positionals: true });
  if (!parsed) {
    process.stdout.write(helpOf(REPORT_SPEC));
    return 0;
  }
  const { output, title } = parsed.values as { output?: string; title?: string };
  if (parsed.positionals.length === 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      'give at least one run directory: troupe report RUN_DIR… (troupe report --help)',
    );
  }
  const runs = runDirs(parsed.positionals);
  if (runs.length === 1 && output === undefined && title === undefined) {
    log(`wrote ${await writeReport(runs[0]!.dir)}`);
    return 0;
  }
  const inputs: RunInput[] = await Promise.all(
    runs.map(async (r) => ({ ...(await readRun(r.dir)), name: r.name })),
  );
  const path = resolve(
    output ?? (runs.length === 1 ? join(runs[0]!.dir, REPORT_FILE) : REPORT_FILE),
  );
  const heading = title ?? `Troupe runs: ${runs.map((r) => r.name).join(', ')}`;
  await writeFileAtomic(path, renderRuns(inputs, { title: heading }));
  log(`wrote ${path} (${runs.length} run${runs.length === 1 ? '' : 's'})`);
  return 0;
}
