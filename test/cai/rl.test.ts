import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Constitution, loadConstitution } from '../../src/cai/constitution.js';
import { promptTurns } from '../../src/cai/dialogue.js';
import { EndpointModel, endpointSchema, optionMass } from '../../src/cai/endpoint.js';
import { type FeedbackOptions, Labeller } from '../../src/cai/feedback.js';
import { type RlRecord, rlStage, rmRows } from '../../src/cai/rl.js';
import { runDataStage } from '../../src/cai/stage.js';
import { hasCode } from '../../src/errors.js';
import { type Scripted, type ScriptedOptions, scoreOf, startScripted } from './scripted-server.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-cai-rl-'));
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

const PROMPTS = Array.from({ length: 7 }, (_, i) => `[red] #pairs question ${i}`);
const items = PROMPTS.map((p) => ({ prompt: p, turns: promptTurns(p) }));
const SAMPLING = { seed: 3, maxTokens: 16, temperature: 1, topP: 1 };

const FEEDBACK: FeedbackOptions = {
  seed: 3,
  principles: 3,
  chainOfThought: false,
  clamp: [0.4, 0.6],
  votes: 6,
  shots: 1,
  reasoningTokens: 32,
  temperature: 1,
  shuffleOrder: true,
};

let constitution: Constitution;
const servers: Scripted[] = [];

beforeAll(async () => {
  constitution = await loadConstitution('data/cai/constitution.yaml');
});
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function server(o: ScriptedOptions = {}) {
  const s = await startScripted(o);
  servers.push(s);
  return s;
}

const model = (s: Scripted, api: 'chat' | 'completions', extra: Record<string, unknown> = {}) =>
  new EndpointModel(endpointSchema.parse({ url: s.url, api, ...extra }), constitution.stop);

async function label(
  s: Scripted,
  api: 'chat' | 'completions',
  o: Partial<FeedbackOptions> = {},
  log: string[] = [],
) {
  const labeller = new Labeller(model(s, api), constitution, { ...FEEDBACK, ...o }, (m) =>
    log.push(m),
  );
  const r = await runDataStage(
    tmp(),
    {},
    rlStage(model(s, api), labeller, constitution, items, SAMPLING, 3),
  );
  return { records: r.records, labeller };
}

describe('RL-CAI labels from a scripted feedback model', () => {
  for (const api of ['chat', 'completions'] as const) {
    it(`${api}: soft labels are the normalised option probabilities, ensembled, order undone`, async () => {
      const s = await server();
      const { records } = await label(s, api);
      const labelled = records.filter((r) => r.prob !== undefined);
      const skipped = records.filter((r) => r.skipped === 'identical');
      expect(labelled.length).toBeGreaterThan(2);
      for (const r of skipped) expect(r.responses[0]).toBe(r.responses[1]);
      for (const r of labelled) {
        const d = scoreOf(r.responses[0]) - scoreOf(r.responses[1]);
        // The server gives P(A) = σ(N_A − N_B) over its tokens 'A', ' A' and 'B' (and a 'C'):
        // each verdict, once its order is undone, is σ(N_first − N_second).
        expect(r.judgements).toHaveLength(3);
        for (const j of r.judgements!) {
          expect(j.source).toBe('logprobs');
          expect(j.p).toBeCloseTo(sigmoid(d), 9);
          expect(j.pA).toBeCloseTo(j.firstIsA ? sigmoid(d) : sigmoid(-d), 9);
        }
        expect(r.prob).toBeCloseTo(sigmoid(d), 9);
        // Three different principles per pair.
        expect(new Set(r.judgements!.map((j) => j.principle)).size).toBe(3);
      }
      // Both orders were shown.
      const orders = new Set(labelled.flatMap((r) => r.judgements!.map((j) => j.firstIsA)));
      expect(orders).toEqual(new Set([true, false]));
      // The reward-model rows put the likelier-preferred reply first, with P ≥ ½.
      const rows = rmRows(constitution, 'text', records, (x) => promptTurns(x.prompt));
      expect(rows).toHaveLength(labelled.length);
      for (const row of rows) {
        expect(row['chosen_prob'] as number).toBeGreaterThanOrEqual(0.5);
        expect(scoreOf(row['chosen'] as string)).toBeGreaterThanOrEqual(
          scoreOf(row['rejected'] as string),
        );
        expect(row['prompt']).toMatch(/^Human: \[red\] #pairs question \d\n\nAssistant:$/);
      }
    });
  }

  it('chain of thought: reasons first, then the labels are clamped to [0.4, 0.6]', async () => {
    const s = await server();
    const { records } = await label(s, 'completions', { chainOfThought: true });
    const labelled = records.filter((r) => r.prob !== undefined);
    for (const r of labelled) {
      const d = scoreOf(r.responses[0]) - scoreOf(r.responses[1]);
      const best = Math.max(scoreOf(r.responses[0]), scoreOf(r.responses[1]));
      for (const j of r.judgements!) {
        expect(j.reasoning).toBe(`Reply #${best} is kinder.`);
        expect(j.p).toBeCloseTo(Math.min(0.6, Math.max(0.4, sigmoid(d))), 9);
      }
    }
    // Some pairs are far enough apart that the clamp bites (σ(±1) = 0.73 / 0.27 → 0.6 / 0.4).
    const bitten = labelled.filter(
      (r) => Math.abs(sigmoid(scoreOf(r.responses[0]) - scoreOf(r.responses[1])) - 0.5) > 0.1,
    );
    expect(bitten.length).toBeGreaterThan(0);
    for (const r of bitten) expect(Math.abs(r.prob! - 0.5)).toBeCloseTo(0.1, 12);
    // The answer request carried the reasoning after the lead-in.
    const answered = s.requests.find(
      (q) => String(q.body['prompt']).includes('is kinder.') && q.body['logprobs'] !== undefined,
    );
    expect(String(answered!.body['prompt'])).toMatch(
      /Let's think step by step: Reply #\d is kinder\.\n\nThe answer is: \($/,
    );
  });

  it('no log-probs from the endpoint: labels from sampled votes, and it says so', async () => {
    const s = await server({ noLogprobs: true });
    const log: string[] = [];
    const { records, labeller } = await label(s, 'chat', {}, log);
    const js = records.flatMap((r) => r.judgements ?? []);
    expect(js.length).toBeGreaterThan(0);
    for (const j of js) {
      expect(j.source).toBe('votes');
      expect(j.validVotes).toBe(6);
      // A share of the 6 votes: k/6.
      expect(Math.abs(j.pA * 6 - Math.round(j.pA * 6))).toBeLessThan(1e-9);
    }
    expect(labeller.votedQuestions).toBe(js.length);
    expect(log.filter((l) => l.includes('gives no log-probs'))).toHaveLength(1);
    expect(log[0]).toContain('6 sampled votes per question');
    // Each verdict's P(A) is the share of the server's votes for A on that question.
    const byQuestion = new Map<string, string[]>();
    for (const [text, letter] of s.votes)
      byQuestion.set(text, [...(byQuestion.get(text) ?? []), letter]);
    const shares = [...byQuestion.values()].map(
      (v) => v.filter((l) => l === 'A').length / v.length,
    );
    expect(js.map((j) => j.pA).sort()).toEqual(shares.sort());
  });

  it('resumes after an interruption with the labels of an uninterrupted run', async () => {
    const s = await server();
    const make = () =>
      rlStage(
        model(s, 'chat'),
        new Labeller(model(s, 'chat'), constitution, FEEDBACK),
        constitution,
        items,
        SAMPLING,
        3,
      );
    const whole = await runDataStage(tmp(), {}, make());
    const dir = tmp();
    const ac = new AbortController();
    const cut = await runDataStage(dir, {}, make(), {
      signal: ac.signal,
      events: { onMetrics: () => ac.abort() },
    });
    expect(cut.records).toHaveLength(3);
    const again = await runDataStage<RlRecord>(dir, {}, make(), { resume: true });
    expect(again.records).toEqual(whole.records);
  });
});

describe('endpoint errors', () => {
  it('name the URL and the status, retrying 5xx and not 4xx', async () => {
    for (const [status, attempts] of [
      [500, 3],
      [404, 1],
    ] as const) {
      const s = await server({ fail: status });
      const m = model(s, 'chat', { retries: 2 });
      const e = await m
        .generate([{ messages: [{ role: 'user', content: 'hi' }], text: 'hi' }], {
          maxTokens: 4,
          temperature: 0,
          topP: 1,
          key: { seed: 0, step: 0, purpose: 'x' },
        })
        .catch((x: unknown) => x);
      expect(hasCode(e, 'ENDPOINT_FAILED')).toBe(true);
      const msg = (e as Error).message;
      expect(msg).toContain(`POST ${s.url}/chat/completions`);
      expect(msg).toContain(`HTTP ${status}`);
      expect(msg).toContain('scripted failure');
      expect(s.requests).toHaveLength(attempts);
    }
  });

  it('a server that is not there: the URL and the network reason', async () => {
    const s = await server();
    await s.close();
    servers.pop();
    const m = model(s, 'completions', { retries: 0 });
    const e = (await m
      .optionLogprobs({ messages: [], text: 'q' }, ['A', 'B'])
      .catch((x: unknown) => x)) as Error;
    expect(e.message).toContain(`POST ${s.url}/completions failed`);
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it('an answer without choices names what is missing', async () => {
    const { createServer } = await import('node:http');
    const srv = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object":"chat.completion"}');
    });
    await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
    const port = (srv.address() as { port: number }).port;
    const m = new EndpointModel(
      endpointSchema.parse({ url: `http://127.0.0.1:${port}/v1` }),
      constitution.stop,
    );
    const e = (await m
      .optionLogprobs({ messages: [{ role: 'user', content: 'q' }], text: 'q' }, ['A', 'B'])
      .catch((x: unknown) => x)) as Error;
    srv.close();
    expect(e.message).toContain(`POST http://127.0.0.1:${port}/v1/chat/completions failed`);
    expect(e.message).toContain('no choices[0].message.content');
  });
});

describe('option mass', () => {
  it('sums an option over its token spellings; a missing option gets the lowest listed', () => {
    const got = optionMass(
      [
        [
          ['(', -0.1],
          ['The', -3],
        ],
        [
          [' A', Math.log(0.3)],
          ['A', Math.log(0.3)],
          ['(B', Math.log(0.2)],
          ['x', Math.log(0.05)],
        ],
      ],
      ['A', 'B'],
    )!;
    expect(got.logprobs[0]).toBeCloseTo(Math.log(0.6), 12);
    expect(got.logprobs[1]).toBeCloseTo(Math.log(0.2), 12);
    const floor = optionMass(
      [
        [
          ['A', -0.5],
          ['x', -4],
        ],
      ],
      ['A', 'B'],
    )!;
    expect(floor.logprobs).toEqual([-0.5, -4]);
    expect(optionMass([[['x', -1]]], ['A', 'B'])).toBeUndefined();
  });
});
