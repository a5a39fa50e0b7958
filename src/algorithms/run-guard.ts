import type { LogRecord } from '../actors/protocol.js';
import { Supervisor } from '../actors/supervisor.js';
import { writeReport } from '../train/report.js';
import type { RunDir } from '../train/run-dir.js';

/**
 * What a run does when something goes wrong: a failure is written to its log.txt with what
 * caused it, and its report still written; its actors' warnings and restarts are told to the
 * run's log and to whoever watches (the terminal).
 */

/** Errors already written to a run's log.txt (so the trainer's guard does not repeat them). */
const recorded = new WeakSet<object>();

/** `[CODE] message (actor 'reward', reward source 'flaky')`, and the causes under it. */
export function describeFailure(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const err = e as Error & { code?: string; actor?: string; details?: Record<string, unknown> };
  const actor = err.actor ?? err.details?.['actor'];
  const source = err.details?.['source'];
  const where = [
    actor === undefined ? undefined : `actor '${actor}'`,
    source === undefined ? undefined : `reward source '${source}'`,
  ].filter((x) => x !== undefined);
  const causes: string[] = [];
  for (let c = err.cause as Error | undefined, depth = 0; c && depth < 4; depth++) {
    const code = (c as { code?: string }).code;
    causes.push(`caused by: ${code ? `[${code}] ` : ''}${c.message ?? String(c)}`);
    c = c.cause as Error | undefined;
  }
  return [
    `${err.code ? `[${err.code}] ` : ''}${err.message}${where.length > 0 ? ` (${where.join(', ')})` : ''}`,
    ...causes,
  ].join('\n  ');
}

/**
 * A run that fails: the error (code, message, the actor or reward source it came from) goes
 * to log.txt and report.html is written with what the run got to, then the error goes on.
 */
export async function recordFailure(run: RunDir, e: unknown, during?: string): Promise<void> {
  if (e && typeof e === 'object') {
    if (recorded.has(e)) return;
    recorded.add(e);
  }
  run.log(`run failed${during === undefined ? '' : ` in ${during}`}: ${describeFailure(e)}`);
  await writeReport(run).catch((r: Error) =>
    run.log(`report.html could not be written: ${r.message}`),
  );
}

/** Run a trainer's body, recording a failure in the run directory before it propagates. */
export async function guardRun<T>(run: RunDir, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    await recordFailure(run, e);
    throw e;
  }
}

/**
 * A supervisor for a run's actors: their log records and restarts go to log.txt and to
 * `onLog` (the terminal shows warnings, and so every restart); calls retried on a restart
 * (stateless actors' `retryOnCrash`) to log.txt.
 */
export function runSupervisor(run: RunDir, ev: { onLog?(record: LogRecord): void }): Supervisor {
  return new Supervisor({
    onLog: (r) => {
      run.log(`[${r.actor}] ${r.level}: ${r.message}`);
      ev.onLog?.(r);
    },
    onRestart: (e) => {
      const message = `actor '${e.thread}' restarted (restart ${e.restart}) after: ${(e.cause as Error)?.message ?? e.cause}`;
      run.log(message);
      ev.onLog?.({ actor: e.thread, level: 'warn', message, time: Date.now() });
    },
    onRetry: (e) =>
      run.log(
        `${e.actor}: the actor crashed (${(e.cause as Error)?.message ?? e.cause}); retrying ${e.actor}.${e.method}() on its restart`,
      ),
  });
}
