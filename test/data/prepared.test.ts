import { describe, expect, it } from 'vitest';
import {
  collateBlocks,
  collatePreferences,
  DataLoader,
  loadExamples,
  type PreferenceItem,
  packDocuments,
  tokenizePreference,
} from '../../src/data/index.js';
import { gpt2Tokenizer, SPECIALS } from './helpers.js';

/** The committed files under data/ (built by scripts/prepare-data.ts) load as their conventions. */
describe('data/', () => {
  const tok = gpt2Tokenizer();

  it('sentiment: labelled text, preference pairs of a positive over a negative sentence, prompts', async () => {
    const labelled = await loadExamples('data/sentiment/labelled.jsonl');
    expect(labelled).toHaveLength(2982);
    const label = new Map(labelled.map((e) => [e.kind === 'text' ? e.text : '', e.extra.label]));
    const prefs = await loadExamples('data/sentiment/preferences.jsonl');
    expect(prefs).toHaveLength(1488);
    for (const p of prefs) {
      if (p.kind !== 'preference' || p.conversational) throw new Error(`unexpected ${p.kind} row`);
      expect(label.get(p.chosen.trim())).toBe(1);
      expect(label.get(p.rejected.trim())).toBe(0);
    }
    const prompts = await loadExamples('data/sentiment/prompts.jsonl');
    expect(prompts.length).toBeGreaterThan(1000);
    expect(prompts.every((p) => p.kind === 'prompt' && typeof p.extra.source === 'string')).toBe(
      true,
    );
  });

  it('preferences go end to end: tokenize, load in seeded batches, collate', async () => {
    const prefs = (await loadExamples('data/sentiment/preferences.jsonl')).slice(0, 64);
    const items = prefs.map(
      (p) => tokenizePreference(tok, p as never, { maxLength: 48, overlong: 'truncate' })!,
    );
    const loader = new DataLoader<PreferenceItem, ReturnType<typeof collatePreferences>>(items, {
      batchSize: 8,
      seed: 1,
      collate: (xs) => collatePreferences(xs, { padId: tok.padTokenId! }),
    });
    const batch = loader.next().value!;
    expect(batch.tokens.batch).toBe(16);
    expect(batch.tokens.length).toBeLessThanOrEqual(48);
    expect(batch.promptLengths).toHaveLength(8);
  });

  it('moby-dick: disjoint train and eval chapters that pack into blocks', async () => {
    const train = await loadExamples('data/moby-dick/train.jsonl');
    const evalRows = await loadExamples('data/moby-dick/eval.jsonl');
    expect(train.length + evalRows.length).toBe(138);
    const chapters = new Set(train.map((e) => e.extra.chapter));
    expect(evalRows.some((e) => chapters.has(e.extra.chapter))).toBe(false);
    const docs = evalRows.map((e) => tok.encode(e.kind === 'text' ? e.text : ''));
    const tokens = docs.reduce((s, d) => s + d.length + 1, 0);
    const blocks = packDocuments(docs, { blockSize: 128, eosId: SPECIALS['<|endoftext|>'] });
    expect(blocks).toHaveLength(Math.floor((tokens - 1) / 128));
    expect(collateBlocks(blocks.slice(0, 4)).tokens.length).toBe(129);
  });

  it('arithmetic: a+b problems split into SFT, RL train and held-out eval with no shared pair', async () => {
    const sft = await loadExamples('data/arithmetic/sft.jsonl');
    const train = await loadExamples('data/arithmetic/train.jsonl');
    const evalRows = await loadExamples('data/arithmetic/eval.jsonl');
    expect([sft.length, train.length, evalRows.length]).toEqual([1150, 1150, 200]);
    const problems = new Set<string>();
    const check = (prompt: unknown, answer: unknown) => {
      const m = /^(\d+)\+(\d+)=$/.exec(String(prompt));
      if (!m) throw new Error(`unexpected prompt ${String(prompt)}`);
      expect(Number(m[1])).toBeLessThanOrEqual(49);
      expect(Number(m[2])).toBeLessThanOrEqual(49);
      expect(answer).toBe(String(Number(m[1]) + Number(m[2])));
      problems.add(String(prompt));
    };
    for (const e of sft) {
      if (e.kind !== 'completion' || e.conversational) throw new Error(`unexpected ${e.kind} row`);
      check(e.prompt, e.completion);
    }
    for (const e of [...train, ...evalRows]) {
      if (e.kind !== 'prompt') throw new Error(`unexpected ${e.kind} row`);
      check(e.prompt, e.extra.answer);
    }
    expect(problems.size).toBe(2500);
    // sft-noisy: the same prompts, about 60 % answered a + b + 1, the rest a + b.
    const noisy = await loadExamples('data/arithmetic/sft-noisy.jsonl');
    expect(noisy.map((e) => (e.kind === 'completion' ? e.prompt : ''))).toEqual(
      sft.map((e) => (e.kind === 'completion' ? e.prompt : '')),
    );
    let off = 0;
    for (const e of noisy) {
      if (e.kind !== 'completion') throw new Error(`unexpected ${e.kind} row`);
      const [a, b] = String(e.prompt).slice(0, -1).split('+').map(Number);
      const got = Number(e.completion);
      expect([a + b, a + b + 1]).toContain(got);
      if (got === a + b + 1) off++;
    }
    expect(off / noisy.length).toBeGreaterThan(0.55);
    expect(off / noisy.length).toBeLessThan(0.65);
  });
});
