import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { TroupeError } from '../errors.js';
import { fromSources } from './built.js';
import { type PoolOutcome, unwrapOutcome } from './pool-task.js';

export interface TaskPoolOptions {
  /** For messages: `reward-fn`, `verifier`, `tokenize`. */
  readonly name: string;
  /** Most threads; default half the CPUs (at least 1), leaving cores to the model actors. */
  readonly maxThreads?: number;
  /** Default per-task timeout in ms; 0 = none. */
  readonly taskTimeoutMs?: number;
}

export interface RunOptions {
  /** Names the task in errors (`reward 'length' on batch 3`). */
  readonly task?: string;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/**
 * A piscina pool for stateless work that holds no model: user reward functions, rule-based
 * verifiers, tokenisation. A task names a module and one of its exported functions; errors come
 * back with their code and cause and the name of the task that raised them; a task can time out
 * or be cancelled with an AbortSignal (the thread running it is replaced).
 */
export class TaskPool {
  private readonly pool: Piscina;

  constructor(readonly options: TaskPoolOptions) {
    const filename = new URL(`./pool-task.${fromSources ? 'ts' : 'js'}`, import.meta.url).href;
    this.pool = new Piscina({
      filename,
      maxThreads: options.maxThreads ?? Math.max(1, Math.floor(availableParallelism() / 2)),
      minThreads: 0,
      idleTimeout: 30_000,
      // From TypeScript sources the threads need tsx's loader (Node 20 cannot load .ts itself).
      execArgv: fromSources ? ['--import', 'tsx'] : [],
    });
  }

  /** Run `exportName` from `module` (a path or file URL) on `input` in a pool thread. */
  async run<T>(
    module: string | URL,
    exportName: string,
    input: unknown,
    opts: RunOptions = {},
  ): Promise<T> {
    const href =
      module instanceof URL
        ? module.href
        : module.startsWith('file:')
          ? module
          : pathToFileURL(module).href;
    const task = opts.task ?? `${exportName} from ${href}`;
    const timeoutMs = opts.timeoutMs ?? this.options.taskTimeoutMs ?? 0;
    const controller = new AbortController();
    const onAbort = () => controller.abort(opts.signal?.reason);
    if (opts.signal?.aborted) {
      throw new TroupeError(
        'TASK_ABORTED',
        `${this.options.name}: task ${task} was aborted before it started`,
        {
          details: { pool: this.options.name, task },
        },
      );
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs)
        : undefined;
    try {
      const outcome = (await this.pool.run(
        { module: href, exportName, input },
        { signal: controller.signal },
      )) as PoolOutcome;
      return unwrapOutcome(outcome) as T;
    } catch (e) {
      const details = { pool: this.options.name, task };
      if (timedOut) {
        throw new TroupeError(
          'TASK_TIMEOUT',
          `${this.options.name}: task ${task} did not finish within ${timeoutMs} ms`,
          {
            cause: e,
            details: { ...details, timeoutMs },
          },
        );
      }
      if (controller.signal.aborted) {
        throw new TroupeError('TASK_ABORTED', `${this.options.name}: task ${task} was aborted`, {
          cause: e,
          details,
        });
      }
      throw new TroupeError(
        'TASK_FAILED',
        `${this.options.name}: task ${task} failed: ${(e as Error).message}`,
        {
          cause: e,
          details,
        },
      );
    } finally {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Threads currently alive (for tests and diagnostics). */
  get threads(): number {
    return this.pool.threads.length;
  }

  /** Stop every thread; pending tasks fail. */
  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}
