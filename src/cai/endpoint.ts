import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { TroupeError } from '../errors.js';
import { AttemptError, excerpt, postJson } from '../util/http.js';
import { cutAtStop } from './dialogue.js';
import {
  type CaiModel,
  type ModelPrompt,
  type OptionScores,
  type Sampling,
  seedsOf,
} from './model.js';

/*
 * An OpenAI-compatible chat/completions or completions endpoint (a local llama.cpp or vLLM
 * server) as a CAI model: `POST {url}/chat/completions` with messages, or `POST
 * {url}/completions` with the prompt text. Option log-probs come from `logprobs: true,
 * top_logprobs: N` (chat) or `logprobs: N` (completions); a server that returns none makes
 * `optionLogprobs` answer undefined, and the labeller samples votes instead.
 */

export const endpointSchema = z.strictObject({
  /** The API's base URL, e.g. http://127.0.0.1:8080/v1 (the path /chat/completions is added). */
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  /** The `model` field of each request (a server with one model may ignore it). */
  model: z.string().min(1).optional(),
  /** chat: /chat/completions with messages; completions: /completions with the prompt as text. */
  api: z.enum(['chat', 'completions']).default('chat'),
  /** The environment variable that holds a bearer token, if the server wants one. */
  apiKeyEnv: z.string().min(1).optional(),
  /** Per-attempt timeout, ms. */
  timeoutMs: z.number().int().positive().default(120_000),
  /** Further attempts after a network error, a timeout or a 5xx (never after a 4xx). */
  retries: z.number().int().min(0).default(2),
  /** Requests in flight at once. */
  concurrency: z.number().int().positive().default(4),
  /** Alternatives per position asked for (OpenAI allows up to 20). */
  topLogprobs: z.number().int().min(1).max(20).default(5),
  /** Tokens read for the answer's option letter (chat models may open with "(" or "The"). */
  answerTokens: z.number().int().min(1).default(4),
});
export type EndpointConfig = z.output<typeof endpointSchema>;

/** Top alternatives at each generated position, as [token, logprob] lists. */
type Positions = [string, number][][];

interface Answer {
  readonly text: string;
  /** Undefined when the server sent no log-probs. */
  readonly positions?: Positions;
}

/** The log-probs of a choice in either shape servers send (chat `content`, legacy `top_logprobs`). */
function positionsOf(lp: unknown): Positions | undefined {
  if (lp === null || typeof lp !== 'object') return undefined;
  const o = lp as { content?: unknown; top_logprobs?: unknown };
  if (Array.isArray(o.content)) {
    return o.content.map((p) =>
      Array.isArray((p as { top_logprobs?: unknown }).top_logprobs)
        ? (p as { top_logprobs: { token: string; logprob: number }[] }).top_logprobs.map(
            (t) => [String(t.token), Number(t.logprob)] as [string, number],
          )
        : [],
    );
  }
  if (Array.isArray(o.top_logprobs)) {
    return o.top_logprobs.map((p) =>
      p && typeof p === 'object'
        ? Object.entries(p as Record<string, number>).map(
            ([k, v]) => [k, Number(v)] as [string, number],
          )
        : [],
    );
  }
  return undefined;
}

export class EndpointModel implements CaiModel {
  readonly describe: string;
  private readonly path: string;
  /** Requests in flight, and those waiting for a slot. */
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly c: EndpointConfig,
    private readonly stop: readonly string[],
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.path = `${c.url.replace(/\/+$/, '')}/${c.api === 'chat' ? 'chat/completions' : 'completions'}`;
    this.describe = `endpoint ${this.path}${c.model ? ` (model ${c.model})` : ''}`;
    if (c.apiKeyEnv && !env[c.apiKeyEnv]) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `endpoint ${c.url}: apiKeyEnv names ${c.apiKeyEnv}, which is not set in the environment`,
        { details: { field: 'apiKeyEnv' } },
      );
    }
  }

  async generate(prompts: readonly ModelPrompt[], s: Sampling): Promise<string[]> {
    const seeds = seedsOf(s.key, prompts.length);
    const answers = await Promise.all(
      prompts.map((p, i) =>
        this.ask(p, {
          max_tokens: s.maxTokens,
          temperature: s.temperature,
          top_p: s.topP,
          seed: seeds[i],
          stop: this.stop,
        }),
      ),
    );
    return answers.map((a) => cutAtStop(a.text, this.stop));
  }

  async optionLogprobs(
    prompt: ModelPrompt,
    options: readonly string[],
  ): Promise<OptionScores | undefined> {
    const logprobs =
      this.c.api === 'chat'
        ? { logprobs: true, top_logprobs: this.c.topLogprobs }
        : { logprobs: this.c.topLogprobs };
    const a = await this.ask(prompt, {
      max_tokens: this.c.answerTokens,
      temperature: 0,
      ...logprobs,
    });
    if (!a.positions) return undefined;
    return optionMass(a.positions, options);
  }

  dispose(): void {}

  /** Wait for one of the `concurrency` request slots (every request of this model shares them). */
  private async slot(): Promise<() => void> {
    if (this.active >= this.c.concurrency) await new Promise<void>((ok) => this.waiting.push(ok));
    this.active++;
    return () => {
      this.active--;
      this.waiting.shift()?.();
    };
  }

  private body(prompt: ModelPrompt, extra: Record<string, unknown>): string {
    const model = this.c.model ? { model: this.c.model } : {};
    return JSON.stringify(
      this.c.api === 'chat'
        ? { ...model, messages: prompt.messages, ...extra }
        : { ...model, prompt: prompt.text, ...extra },
    );
  }

  private async ask(prompt: ModelPrompt, extra: Record<string, unknown>): Promise<Answer> {
    const body = this.body(prompt, extra);
    for (let i = 0; ; i++) {
      const release = await this.slot();
      let failure: unknown;
      try {
        return await this.attempt(body);
      } catch (e) {
        failure = e;
      } finally {
        release();
      }
      const retryable = failure instanceof AttemptError && failure.retryable;
      if (!retryable || i >= this.c.retries) {
        const status = (failure as AttemptError).status;
        throw new TroupeError(
          'ENDPOINT_FAILED',
          `POST ${this.path} failed${i > 0 ? ` after ${i + 1} attempts` : ''}: ${(failure as Error).message}`,
          { cause: failure, details: { url: this.path, status, attempts: i + 1 } },
        );
      }
      await sleep(200 * 2 ** i);
    }
  }

  private async attempt(body: string): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (this.c.apiKeyEnv) headers['authorization'] = `Bearer ${this.env[this.c.apiKeyEnv]}`;
    const { status, text, json } = await postJson(this.path, {
      body,
      headers,
      timeoutMs: this.c.timeoutMs,
    });
    const choice = (json as { choices?: unknown[] } | null)?.choices?.[0] as
      | { message?: { content?: unknown }; text?: unknown; logprobs?: unknown }
      | undefined;
    const content = this.c.api === 'chat' ? choice?.message?.content : choice?.text;
    if (typeof content !== 'string') {
      throw new AttemptError(
        `HTTP ${status}, but the answer has no ${this.c.api === 'chat' ? 'choices[0].message.content' : 'choices[0].text'}: ${excerpt(text)}`,
        false,
        status,
      );
    }
    return { text: content, positions: positionsOf(choice?.logprobs) };
  }
}

/** A token as an option letter: `A`, ` A`, `(A`, `(A)` → `A`. */
const letterOf = (token: string) => token.replace(/[\s()[\]*.:]/g, '');

/**
 * The options' log-probs at the first answer position where any of them is among the top
 * alternatives: each option's tokens (` A`, `A`, `(A`) summed in probability. An option missing
 * there gets the lowest listed log-prob: its probability is at most that (an upper bound, which
 * keeps the label from claiming certainty the server did not show). Undefined when no position
 * names an option (the caller then samples votes).
 */
export function optionMass(
  positions: Positions,
  options: readonly string[],
): OptionScores | undefined {
  for (const alts of positions) {
    const mass = options.map(() => 0);
    let found = false;
    for (const [token, lp] of alts) {
      const k = options.indexOf(letterOf(token));
      if (k >= 0 && Number.isFinite(lp)) {
        mass[k] += Math.exp(lp);
        found = true;
      }
    }
    if (!found) continue;
    const floor = Math.min(...alts.map(([, lp]) => lp).filter(Number.isFinite));
    return { logprobs: mass.map((m) => (m > 0 ? Math.log(m) : floor)) };
  }
  return undefined;
}
