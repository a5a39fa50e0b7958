import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * A deterministic scripted critic on loopback, speaking the OpenAI API (/v1/chat/completions and
 * /v1/completions, with log-probs in both of their shapes), for the CAI tests. What it answers
 * depends only on the request:
 *
 *   a prompt marked [red]      "Unsafe answer v0." (SL), or "reply #N" with N = seed mod 5 when it is
 *                              also marked #pairs (RL's response pairs)
 *   a revision request         (a last human turn opening Rewrite / Revise) "Sure, here is a revised
 *                              response: Safe answer vK.", K = the revised reply's version + 1; ""
 *                              from version 1 on when the prompt says "empty please"
 *   any other request          a critique: "The reply is harmful (round)."
 *   a reasoning request        "Reply #N is kinder." (the better reply of the two)
 *   a feedback question        option log-probs: log σ(N_A − N_B) for A and log σ(N_B − N_A) for B
 *                              (replies scored by their #N), split over 'A' and ' A'; or, with
 *                              `noLogprobs`, no log-probs, and a sampled vote: the better option
 *                              unless seed mod 4 = 0
 *
 * `fail` answers every request with that HTTP status.
 */

export interface ScriptedOptions {
  readonly noLogprobs?: boolean;
  readonly fail?: number;
}

export interface Scripted {
  readonly url: string;
  readonly requests: { path: string; body: Record<string, unknown> }[];
  /** Votes cast, in order: [question text, letter]. */
  readonly votes: [string, string][];
  close(): Promise<void>;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** The #N of a reply (its score; 0 when it has none). */
export const scoreOf = (reply: string) => Number(/#(\d+)/.exec(reply)?.[1] ?? 0);

function read(req: IncomingMessage): Promise<string> {
  return new Promise((ok, fail) => {
    let s = '';
    req.on('data', (c) => {
      s += c;
    });
    req.on('end', () => ok(s));
    req.on('error', fail);
  });
}

/** The text of a request: the prompt, or the messages joined. */
function textOf(body: Record<string, unknown>): string {
  if (typeof body['prompt'] === 'string') return body['prompt'];
  return (body['messages'] as { content: string }[]).map((m) => m.content).join('\n\n');
}

function lastUser(body: Record<string, unknown>): string {
  if (typeof body['prompt'] === 'string') {
    const parts = (body['prompt'] as string).split('Human:');
    return parts[parts.length - 1];
  }
  const ms = body['messages'] as { role: string; content: string }[];
  return [...ms].reverse().find((m) => m.role === 'user')!.content;
}

/** The two replies of a feedback question, as shown (A then B): the last question in the text. */
function optionsOf(text: string): [string, string] {
  const all = [...text.matchAll(/\(A\) (.*)\n\(B\) (.*)/g)];
  const m = all[all.length - 1];
  return [m[1], m[2]];
}

export async function startScripted(o: ScriptedOptions = {}): Promise<Scripted> {
  const requests: Scripted['requests'] = [];
  const votes: Scripted['votes'] = [];
  const server: Server = createServer(async (req, res) => {
    const body = JSON.parse(await read(req)) as Record<string, unknown>;
    const path = req.url ?? '';
    requests.push({ path, body });
    if (o.fail) {
      res.writeHead(o.fail, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'scripted failure' } }));
      return;
    }
    const chat = path.endsWith('/chat/completions');
    const text = textOf(body);
    const user = lastUser(body);
    const seed = Number(body['seed'] ?? 0);
    let answer: string;
    let logprobs: unknown = null;
    const asksLogprobs = chat ? body['logprobs'] === true : typeof body['logprobs'] === 'number';
    if (text.includes('Options:')) {
      const [a, b] = optionsOf(text);
      const d = scoreOf(a) - scoreOf(b);
      const better = d >= 0 ? 'A' : 'B';
      if (/step by step:\s*$/.test(chat ? user : text)) {
        answer = `Reply #${Math.max(scoreOf(a), scoreOf(b))} is kinder.`;
      } else if (asksLogprobs && !o.noLogprobs) {
        const la = Math.log(sigmoid(d));
        const lb = Math.log(sigmoid(-d));
        const half = Math.log(0.5);
        answer = chat ? '(A)' : 'A)';
        logprobs = chat
          ? {
              content: [
                {
                  token: '(',
                  top_logprobs: [
                    { token: '(', logprob: -0.01 },
                    { token: 'The', logprob: -5 },
                  ],
                },
                {
                  token: 'A',
                  top_logprobs: [
                    { token: 'A', logprob: la + half },
                    { token: ' A', logprob: la + half },
                    { token: 'B', logprob: lb },
                    { token: 'C', logprob: -9 },
                  ],
                },
              ],
            }
          : { top_logprobs: [{ A: la + half, ' A': la + half, B: lb, C: -9 }] };
      } else {
        const letter = seed % 4 === 0 ? (better === 'A' ? 'B' : 'A') : better;
        // The log-prob request that found none is not a vote.
        if (!asksLogprobs) votes.push([text, letter]);
        answer = chat ? `(${letter})` : `${letter}) because`;
      }
    } else if (/^\s*(Rewrite|Revise)/.test(user)) {
      // The reply being revised: the assistant turn before the critique.
      const current = chat
        ? (body['messages'] as { content: string }[]).at(-4)!.content
        : text.split('Assistant:').at(-3)!;
      const version = Number(/v(\d+)/.exec(current)?.[1] ?? 0);
      answer =
        text.includes('empty please') && version >= 1
          ? ''
          : `Sure, here is a revised response: Safe answer v${version + 1}.`;
    } else if (user.includes('[red]') && user.includes('#pairs')) {
      answer = `reply #${seed % 5}`;
    } else if (user.includes('[red]')) {
      answer = 'Unsafe answer v0.';
    } else {
      answer = 'The reply is harmful (round).';
    }
    const choice = chat
      ? {
          index: 0,
          message: { role: 'assistant', content: answer },
          logprobs,
          finish_reason: 'stop',
        }
      : { index: 0, text: answer, logprobs, finish_reason: 'stop' };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'x',
        object: chat ? 'chat.completion' : 'text_completion',
        choices: [choice],
      }),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    votes,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
