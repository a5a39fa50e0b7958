/*
 * One JSON POST with its own timeout, and what a failed attempt says, for every client Troupe
 * has of an HTTP service (the reward's http source, the CAI endpoint model): each retries
 * AttemptErrors its own way, counts attempts in its own messages, and reads its own fields.
 */

/** A failed attempt, and whether another may succeed. */
export class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Why a request failed, from the cause chain fetch hides behind "fetch failed":
 * `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8000` (each of an AggregateError's, too).
 */
export function networkReason(e: unknown): string {
  const reasons: string[] = [];
  const visit = (x: unknown, depth: number) => {
    if (!(x instanceof Error) || depth > 6) return;
    const inner = x instanceof AggregateError ? x.errors : x.cause === undefined ? [] : [x.cause];
    if (inner.length > 0) {
      for (const i of inner) visit(i, depth + 1);
      return;
    }
    const code = (x as { code?: unknown }).code;
    const text =
      typeof code === 'string' && !x.message.startsWith(code) ? `${code}: ${x.message}` : x.message;
    if (!reasons.includes(text)) reasons.push(text);
  };
  visit(e, 0);
  const top = e instanceof Error ? e.message : String(e);
  const deeper = reasons.filter((r) => r !== top);
  return deeper.length > 0 ? `${top} (${deeper.join('; ')})` : top;
}

/** A body as one line of at most 300 characters, for an error message. */
export function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}

export interface PostJson {
  /** The JSON text to send. */
  readonly body: string;
  /** Sent beside `content-type: application/json`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** This attempt's limit, ms. */
  readonly timeoutMs: number;
  /** The caller's own abort: rethrown as it comes, never an AttemptError. */
  readonly signal?: AbortSignal;
}

/**
 * One POST of `o.body` to `url`: the answer's status, text and parsed JSON. A network error, a
 * timeout or a 5xx is a retryable AttemptError; a 4xx or a body that is not JSON is one that is
 * not.
 */
export async function postJson(
  url: string,
  o: PostJson,
): Promise<{ readonly status: number; readonly text: string; readonly json: unknown }> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, o.timeoutMs);
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...o.headers },
      body: o.body,
      signal: controller.signal,
    });
    text = await res.text();
  } catch (e) {
    if (o.signal?.aborted) throw e;
    if (timedOut)
      throw new AttemptError(`no response within ${o.timeoutMs} ms`, true, undefined, { cause: e });
    throw new AttemptError(`network error: ${networkReason(e)}`, true, undefined, { cause: e });
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (!res.ok) {
    throw new AttemptError(
      `HTTP ${res.status} ${res.statusText}: ${excerpt(text)}`,
      res.status >= 500,
      res.status,
    );
  }
  try {
    return { status: res.status, text, json: JSON.parse(text) };
  } catch (e) {
    throw new AttemptError(`response is not JSON: ${excerpt(text)}`, false, res.status, {
      cause: e,
    });
  }
}
