import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { parseOptions, refuseUnknownKeys } from '../config/options.js';
import { TroupeError } from '../errors.js';
import { AttemptError, excerpt, networkReason, postJson } from '../util/http.js';
import { defineSource } from './check.js';
import type { RewardBatch, RewardSource } from './types.js';

const HTTP_KEYS = ['name', 'url', 'timeoutMs', 'retries', 'backoffMs', 'headers'] as const;
const httpSchema = z.strictObject(
  {
    /** Source name in logs and errors. */
    name: z.string().min(1, 'must be a non-empty string'),
    /** Endpoint that takes a JSON POST `{ prompts, completions, columns }`. */
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
    /** Per-attempt timeout in ms. */
    timeoutMs: z.number().int().positive('must be > 0').default(30_000),
    /** Further attempts after a network error, timeout or 5xx (never after a 4xx). */
    retries: z.number().int().min(0, 'must be an integer ≥ 0').default(2),
    /** First backoff in ms; doubles per retry. */
    backoffMs: z.number().min(0, 'must be ≥ 0').default(200),
    /** Extra request headers (auth tokens). */
    headers: z.record(z.string(), z.string()).default({}),
  },
  { error: refuseUnknownKeys(HTTP_KEYS) },
);
export type HttpSourceOptions = z.input<typeof httpSchema>;

export { networkReason };

async function attempt(
  o: z.output<typeof httpSchema>,
  body: string,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const { json, text } = await postJson(o.url, {
    body,
    headers: o.headers,
    timeoutMs: o.timeoutMs,
    signal,
  });
  const rewards = (json as { rewards?: unknown } | null)?.rewards;
  if (!Array.isArray(rewards)) {
    throw new AttemptError(`response has no 'rewards' array: ${excerpt(text)}`, false);
  }
  return rewards;
}

export interface HttpSourceHooks {
  /** Told of each failed attempt that is retried (the reward actor logs it as a warning). */
  readonly log?: (message: string, data?: Record<string, unknown>) => void;
}

/**
 * A reward from an HTTP service: POST `{ prompts, completions, columns }` as JSON, expect
 * `{ rewards: number[] }`. Each attempt has its own timeout; network errors, timeouts and 5xx
 * are retried with exponential backoff (each retry told to `hooks.log`), 4xx and malformed
 * bodies are not. A network error says its cause (`ECONNREFUSED: connect ECONNREFUSED …`).
 */
export function httpSource(options: HttpSourceOptions, hooks: HttpSourceHooks = {}): RewardSource {
  const o = parseOptions(httpSchema, options, 'httpSource');
  return defineSource(o.name, async (batch: RewardBatch, opts) => {
    const body = JSON.stringify({
      prompts: batch.prompts,
      completions: batch.completions,
      columns: batch.columns,
    });
    for (let i = 0; ; i++) {
      if (opts.signal?.aborted) {
        throw new TroupeError('TASK_ABORTED', `POST ${o.url} was aborted`);
      }
      try {
        return (await attempt(o, body, opts.signal)) as unknown[];
      } catch (e) {
        if (opts.signal?.aborted) {
          throw new TroupeError('TASK_ABORTED', `POST ${o.url} was aborted`, { cause: e });
        }
        const retryable = e instanceof AttemptError && e.retryable;
        if (!retryable || i >= o.retries) {
          const tries = i + 1;
          throw new TroupeError(
            'BAD_REWARD',
            `POST ${o.url} failed after ${tries} attempt${tries > 1 ? 's' : ''}: ${(e as Error).message}`,
            {
              cause: e,
              details: { url: o.url, attempts: tries, status: (e as AttemptError).status },
            },
          );
        }
        const wait = o.backoffMs * 2 ** i;
        hooks.log?.(
          `reward '${o.name}': POST ${o.url} attempt ${i + 1} of ${o.retries + 1} failed: ${(e as Error).message}; retrying in ${wait} ms`,
          { source: o.name, url: o.url, attempt: i + 1, status: (e as AttemptError).status },
        );
        await sleep(wait, undefined, { signal: opts.signal }).catch(() => {});
      }
    }
  });
}
