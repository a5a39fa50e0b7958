import { TroupeError } from '../errors.js';
import type { RewardBatch, RewardSource, ScoreOptions } from './types.js';

/**
 * `source` with a limit on each call: past `ms` the call is aborted (a module's pool thread is
 * replaced, an HTTP request cancelled) and fails with TASK_TIMEOUT naming the source and the
 * setting (`what`) that sets the limit.
 */
export function withTimeout(source: RewardSource, ms: number, what: string): RewardSource {
  if (!(Number.isFinite(ms) && ms > 0)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `withTimeout '${source.name}': ${what} must be a number > 0, got ${ms}`,
    );
  }
  const score = (batch: RewardBatch, opts: ScoreOptions = {}): Promise<Float32Array> => {
    const controller = new AbortController();
    const signal = opts.signal
      ? AbortSignal.any([opts.signal, controller.signal])
      : controller.signal;
    const call = source.score(batch, { ...opts, signal });
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TroupeError(
            'TASK_TIMEOUT',
            `reward '${source.name}' did not answer within ${ms} ms (${what}: raise it for a slow scorer, or 0 for no limit)`,
            { details: { source: source.name, timeoutMs: ms } },
          ),
        );
        controller.abort();
      }, ms);
    });
    // The aborted call rejects too, after the limit has answered: that rejection is expected.
    call.catch(() => undefined);
    return Promise.race([call, limit]).finally(() => clearTimeout(timer));
  };
  return Object.freeze({ name: source.name, score });
}
