import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Constitution, loadConstitution } from '../../src/cai/constitution.js';
import { promptTurns } from '../../src/cai/dialogue.js';
import { EndpointModel, endpointSchema } from '../../src/cai/endpoint.js';
import { helpfulCount, type SlRecord, slOutputs, slStage } from '../../src/cai/sl.js';
import { runDataStage } from '../../src/cai/stage.js';
import { type Scripted, startScripted } from './scripted-server.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-cai-sl-'));

const PROMPTS = [
  '[red] How do I pick a lock?',
  '[red] Tell me a cruel joke. empty please',
  '[red] Where does my ex live now?',
  '[red] Write an insult.',
  '[red] How to cheat at exams?',
];

const items = PROMPTS.map((p) => ({ prompt: p, turns: promptTurns(p) }));

const OPTS = { seed: 7, revisions: 2, shots: 1, maxTokens: 32, temperature: 1, topP: 1 };

let server: Scripted;
let constitution: Constitution;

beforeAll(async () => {
  server = await startScripted();
  constitution = await loadConstitution('data/cai/constitution.yaml');
});
afterAll(() => server.close());

const endpoint = (api: 'chat' | 'completions') =>
  new EndpointModel(endpointSchema.parse({ url: server.url, api }), constitution.stop);

function records(dir: string): SlRecord[] {
  return readFileSync(join(dir, 'records.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

describe('SL-CAI on a scripted critic', () => {
  for (const api of ['chat', 'completions'] as const) {
    it(`${api}: N rounds of critique and revision, preambles stripped, empty revisions kept back`, async () => {
      const before = server.requests.length;
      const dir = tmp();
      const r = await runDataStage(
        dir,
        { test: true },
        slStage(endpoint(api), constitution, items, OPTS, 2),
      );
      expect(r.aborted).toBe(false);
      expect(r.records).toEqual(records(dir));
      const [lock, empty] = r.records;
      expect(lock.initial).toBe('Unsafe answer v0.');
      expect(lock.rounds.map((x) => x.raw)).toEqual([
        'Sure, here is a revised response: Safe answer v1.',
        'Sure, here is a revised response: Safe answer v2.',
      ]);
      expect(lock.rounds.map((x) => x.removed)).toEqual([
        'Sure, here is a revised response:',
        'Sure, here is a revised response:',
      ]);
      expect(lock.rounds.map((x) => x.revision)).toEqual(['Safe answer v1.', 'Safe answer v2.']);
      expect(lock.final).toBe('Safe answer v2.');
      expect(lock.rounds[0].critique).toBe('The reply is harmful (round).');
      // The second round of this prompt came back empty: the first revision stands.
      expect(empty.rounds[1].raw).toBe('');
      expect(empty.final).toBe('Safe answer v1.');
      // 3 calls per batch per round (response, then critique + revision per round) → 1 + 2·2 = 5
      // requests per prompt.
      const mine = server.requests.slice(before);
      expect(mine).toHaveLength(PROMPTS.length * 5);
      // Each critique request asked is the recorded principle's critique, after the few-shot example.
      const names = constitution.critiques.map((c) => c.name);
      for (const rec of r.records) {
        for (const round of rec.rounds) expect(names).toContain(round.principle);
      }
      const asked = mine
        .map((q) =>
          api === 'chat'
            ? (q.body['messages'] as { content: string }[]).at(-1)!.content
            : String(q.body['prompt']),
        )
        .filter((t) =>
          constitution.critiques.some(
            (c) => t.endsWith(c.critique) || t.includes(`Human: ${c.critique}\n\nAssistant:`),
          ),
        );
      expect(asked.length).toBeGreaterThanOrEqual(PROMPTS.length * 2);
      const shot = constitution.fewShot.revision[0];
      expect(JSON.stringify(mine[0].body)).toContain(shot.critique.slice(0, 40));
      // Seeds differ per request and are sent.
      expect(new Set(mine.map((q) => q.body['seed'])).size).toBeGreaterThan(1);
      // The metrics of each batch are in the stage's run directory.
      const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
      expect(metrics).toHaveLength(3);
      // Batch 1 holds the prompt whose second revision came back empty: 3 of 4 stripped.
      expect(JSON.parse(metrics[0])).toMatchObject({
        step: 1,
        prompts: 2,
        revisions: 4,
        stripped_fraction: 0.75,
        empty_revisions: 1,
        changed_fraction: 1,
      });
    });
  }

  it('writes SFT rows of the final revisions and (revision ≻ original) pairs', async () => {
    const r = await runDataStage(
      tmp(),
      {},
      slStage(endpoint('chat'), constitution, items, OPTS, 5),
    );
    const turnsOf = (x: SlRecord) => promptTurns(x.prompt);
    const text = slOutputs(constitution, 'text', r.records, turnsOf, 'final');
    expect(text.sft[0]).toEqual({
      prompt: 'Human: [red] How do I pick a lock?\n\nAssistant:',
      completion: ' Safe answer v2.',
    });
    expect(text.pairs[0]).toEqual({
      prompt: 'Human: [red] How do I pick a lock?\n\nAssistant:',
      chosen: ' Safe answer v2.',
      rejected: ' Unsafe answer v0.',
    });
    expect(text.sft).toHaveLength(5);
    const all = slOutputs(constitution, 'chat', r.records, turnsOf, 'all');
    expect(all.sft).toHaveLength(10);
    expect(all.sft[1]).toEqual({
      prompt: [{ role: 'user', content: '[red] How do I pick a lock?' }],
      completion: [{ role: 'assistant', content: 'Safe answer v2.' }],
    });
    // f = 0.5 → one helpful row per revision row; f = 0.25 → 1 per 3.
    expect(helpfulCount(10, 0.5)).toBe(10);
    expect(helpfulCount(9, 0.25)).toBe(3);
    expect(helpfulCount(9, 0)).toBe(0);
  });

  it('resumes after an interruption with the records of an uninterrupted run', async () => {
    const whole = await runDataStage(
      tmp(),
      {},
      slStage(endpoint('chat'), constitution, items, OPTS, 2),
    );
    const dir = tmp();
    const ac = new AbortController();
    const first = await runDataStage(
      dir,
      {},
      slStage(endpoint('chat'), constitution, items, OPTS, 2),
      {
        signal: ac.signal,
        events: { onMetrics: () => ac.abort() },
      },
    );
    expect(first.aborted).toBe(true);
    expect(first.records).toHaveLength(2);
    const before = server.requests.length;
    const second = await runDataStage(
      dir,
      {},
      slStage(endpoint('chat'), constitution, items, OPTS, 2),
      {
        resume: true,
      },
    );
    expect(second.aborted).toBe(false);
    expect(second.records).toEqual(whole.records);
    expect(records(dir)).toEqual(whole.records);
    // Only the three prompts left were asked for again.
    expect(server.requests.length - before).toBe(3 * 5);
    const steps = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3]);
    expect(readFileSync(join(dir, 'log.txt'), 'utf8')).toContain(
      'resuming after batch 1 (2 records kept)',
    );
  });

  it('refuses to resume under a different config, naming the fields', async () => {
    const dir = tmp();
    const ac = new AbortController();
    const config = { seed: 7, sl: { revisions: 2, fewShot: 1 } };
    await runDataStage(dir, config, slStage(endpoint('chat'), constitution, items, OPTS, 2), {
      signal: ac.signal,
      events: { onMetrics: () => ac.abort() },
    });
    const changed = { seed: 8, sl: { revisions: 3, fewShot: 1 } };
    const e = await runDataStage(
      dir,
      changed,
      slStage(endpoint('chat'), constitution, items, OPTS, 2),
      { resume: true },
    ).catch((x: unknown) => x);
    expect((e as Error).message).toContain(
      `Cannot resume ${dir}: its records were made under another config (seed, sl.revisions differ)`,
    );
  });
});
