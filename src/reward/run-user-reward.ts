import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TroupeError } from '../errors.js';
import type { RewardBatch } from './types.js';

/** What `moduleSource` sends the pool: the user's module, its export and the batch. */
export interface UserRewardTask {
  /** File URL of the user's module. */
  readonly module: string;
  readonly exportName: string;
  readonly batch: RewardBatch;
}

/**
 * Where a module's syntax error is: V8 gives an ESM import's SyntaxError no file or line, so
 * `node --check` reads the file again and says (`/path/reward.mjs:2`, the line and a caret).
 * Undefined when the file itself parses (the error is in a module it imports).
 */
async function syntaxErrorAt(url: string): Promise<{ where: string; excerpt: string } | undefined> {
  if (!url.startsWith('file:') || !/\.(m?js|cjs)$/.test(url)) return undefined;
  try {
    await promisify(execFile)(process.execPath, ['--check', fileURLToPath(url)], {
      timeout: 30_000,
    });
    return undefined;
  } catch (e) {
    const lines = String((e as { stderr?: string }).stderr ?? '').split('\n');
    const at = lines.findIndex((l) => /:\d+$/.test(l));
    if (at < 0) return undefined;
    return { where: lines[at], excerpt: lines.slice(at + 1, at + 3).join('\n') };
  }
}

/** Import the user's module; a syntax error names its file and line. */
async function importUserModule(task: UserRewardTask): Promise<Record<string, unknown>> {
  try {
    return (await import(task.module)) as Record<string, unknown>;
  } catch (e) {
    const found = e instanceof SyntaxError ? await syntaxErrorAt(task.module) : undefined;
    if (!found) throw e;
    throw new TroupeError(
      'BAD_REWARD',
      `${found.where}: SyntaxError: ${e instanceof Error ? e.message : String(e)}\n${found.excerpt}`,
      { cause: e, details: { module: task.module, where: found.where } },
    );
  }
}

/** The user's function from its module, refused with the exports it has when it is missing. */
async function userFunction(task: UserRewardTask): Promise<(input: unknown) => unknown> {
  const mod = await importUserModule(task);
  const fn = mod[task.exportName];
  if (typeof fn !== 'function') {
    const exports = Object.keys(mod).join(', ') || 'none';
    throw new TypeError(
      `module ${task.module} has no function export '${task.exportName}' (exports: ${exports})`,
    );
  }
  return fn as (input: unknown) => unknown;
}

/** `file:///x/r.mjs:2:39` of the first stack frame in the user's module, as `/x/r.mjs:2:39`. */
function frameIn(e: unknown, url: string): string | undefined {
  const stack = e instanceof Error ? (e.stack ?? '') : '';
  const line = stack.split('\n').find((l) => l.includes(url));
  const m = line && /(file:\/\/[^\s)]+):(\d+):(\d+)/.exec(line);
  return m ? `${fileURLToPath(m[1])}:${m[2]}:${m[3]}` : undefined;
}

/**
 * Runs in a pool thread: import the user's reward module and call its export with
 * `{ prompts, completions, ...columns }`. The result is checked on the caller's side; an error
 * the function throws says where in the module it was thrown.
 */
export async function runUserReward(task: UserRewardTask): Promise<unknown> {
  const fn = await userFunction(task);
  const { prompts, completions, columns } = task.batch;
  try {
    return await fn({ ...columns, prompts, completions });
  } catch (e) {
    const at = frameIn(e, task.module);
    if (!at || e instanceof TroupeError || !(e instanceof Error)) throw e;
    throw new TroupeError('BAD_REWARD', `${e.name}: ${e.message} (at ${at})`, {
      cause: e,
      details: { module: task.module, where: at },
    });
  }
}

/** Runs in a pool thread: import the module and check its export, before the first batch. */
export async function checkUserReward(task: Omit<UserRewardTask, 'batch'>): Promise<true> {
  await userFunction({ ...task, batch: { prompts: [], completions: [], columns: {} } });
  return true;
}
