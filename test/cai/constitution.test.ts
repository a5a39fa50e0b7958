import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { boilerplatePatterns, loadConstitution } from '../../src/cai/constitution.js';
import { cutAtStop, fill, renderText, stripBoilerplate } from '../../src/cai/dialogue.js';
import { clamp, ensemble, normalise, parseVote, voteShare } from '../../src/cai/labels.js';
import { hasCode } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'troupe-constitution-'));
const write = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

async function refusal(file: string): Promise<string> {
  const e = await loadConstitution(file).catch((x: unknown) => x);
  expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
  return (e as Error).message;
}

const MINIMAL = {
  critiques: [{ critique: 'What is wrong?', revision: 'Fix it.' }],
  comparisons: ['Which is kinder?'],
};

describe('constitution file', () => {
  it('the shipped one loads, with the paper structure', async () => {
    const c = await loadConstitution('data/cai/constitution.yaml');
    expect(c.critiques.length).toBeGreaterThanOrEqual(8);
    expect(c.comparisons.length).toBeGreaterThanOrEqual(8);
    expect(c.fewShot.revision).toHaveLength(1);
    expect(c.fewShot.feedback[0].answer).toBe('B');
    expect(c.stop).toEqual(['\n\nHuman:', '\n\n-----']);
    expect(c.feedback.options).toEqual(['A', 'B']);
    // Every critique has its revision, and every name is different.
    expect(new Set(c.critiques.map((x) => x.name)).size).toBe(c.critiques.length);
  });

  it('JSON works too, with defaults for what it leaves out', async () => {
    const c = await loadConstitution(write('min.json', JSON.stringify(MINIMAL)));
    expect(c.dialogue.human).toBe('Human:');
    expect(c.feedback.template).toContain('{response_b}');
    expect(c.boilerplate).toEqual([]);
  });

  it('a malformed one names the file and the field', async () => {
    const cases: [string, string, string][] = [
      ['no-critiques.yaml', 'comparisons: [x]\n', 'critiques'],
      [
        'bad-revision.json',
        JSON.stringify({ ...MINIMAL, critiques: [{ critique: 'x', revision: '' }] }),
        'critiques.0.revision: must be a non-empty string',
      ],
      [
        'unknown.yaml',
        'critiques: [{critique: a, revision: b}]\ncomparisons: [c]\nprinciples: []\n',
        "(root): unknown field 'principles'",
      ],
      [
        'template.yaml',
        'critiques: [{critique: a, revision: b}]\ncomparisons: [c]\nfeedback: {template: "{conversation} {principle} {response_a}"}\n',
        'feedback.template: must contain {response_b}',
      ],
      [
        'regex.yaml',
        'critiques: [{critique: a, revision: b}]\ncomparisons: [c]\nboilerplate: ["(sure"]\n',
        'boilerplate.0: not a regular expression',
      ],
      [
        'answer.yaml',
        'critiques: [{critique: a, revision: b}]\ncomparisons: [c]\nfewShot: {feedback: [{prompt: p, principle: q, responseA: a, responseB: b, answer: C}]}\n',
        "fewShot.feedback.0.answer: 'C' is not one of the options A, B",
      ],
      ['broken.yaml', 'critiques: [unclosed\n', 'not valid YAML'],
      ['broken.json', '{"critiques": ', 'not valid JSON'],
    ];
    for (const [name, body, field] of cases) {
      const file = write(name, body);
      const msg = await refusal(file);
      expect(msg).toContain(`constitution ${file}`);
      expect(msg).toContain(field);
    }
    expect(await refusal(join(dir, 'missing.yaml'))).toContain('cannot read it');
  });
});

describe('dialogue text and boilerplate', () => {
  it('strips preambles, repeatedly, and the quotes they leave', async () => {
    const c = await loadConstitution('data/cai/constitution.yaml');
    const p = boilerplatePatterns(c);
    const cases: [string, string, string][] = [
      [
        'Sure, here is a revised response: Ask your neighbour.',
        'Ask your neighbour.',
        'Sure, here is a revised response:',
      ],
      [
        'Certainly! Here\'s a safer reply: "Keep them apart."',
        'Keep them apart.',
        "Certainly! Here's a safer reply:",
      ],
      ['Revision: I cannot help with that.', 'I cannot help with that.', 'Revision:'],
      [
        'Here is the rewritten answer that avoids harm: Stay safe.',
        'Stay safe.',
        'Here is the rewritten answer that avoids harm:',
      ],
      ['I would rather not. Sure, here is why.', 'I would rather not. Sure, here is why.', ''],
    ];
    for (const [raw, text, removed] of cases)
      expect(stripBoilerplate(raw, p)).toEqual({ text, removed });
  });

  it('renders Human/Assistant text and cuts at the first stop sequence', () => {
    const d = {
      human: 'Human:',
      assistant: 'Assistant:',
      separator: '\n\n',
      exampleSeparator: '\n---\n',
    };
    expect(
      renderText(
        d,
        [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
        ],
        true,
      ),
    ).toBe('Human: hi\n\nAssistant: hello\n\nAssistant:');
    expect(cutAtStop(' fine.\n\nHuman: more\n\n-----x', ['\n\n-----', '\n\nHuman:'])).toBe('fine.');
    expect(fill('{a} and {b} and {a} {c}', { a: '1', b: '2' })).toBe('1 and 2 and 1 {c}');
  });
});

describe('label arithmetic', () => {
  it('normalises option log-probs, clamps, parses and counts votes, averages', () => {
    const [pa, pb] = normalise([Math.log(0.3), Math.log(0.1)]);
    expect(pa).toBeCloseTo(0.75, 12);
    expect(pb).toBeCloseTo(0.25, 12);
    expect(normalise([-1000, -1001])[0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 12);
    expect(normalise([-Infinity, -Infinity])).toEqual([0.5, 0.5]);
    expect([clamp(0.9, 0.4, 0.6), clamp(0.1, 0.4, 0.6), clamp(0.55, 0.4, 0.6)]).toEqual([
      0.6, 0.4, 0.55,
    ]);
    const opts = ['A', 'B'];
    expect(parseVote('The answer is (B), because A is cruel', opts)).toBe(1);
    expect(parseVote('A) it is kinder', opts)).toBe(0);
    expect(parseVote('Neither, really.', opts)).toBeUndefined();
    expect(parseVote('Apples and Bananas', opts)).toBeUndefined();
    expect(voteShare([0, 0, 1, undefined])).toEqual({ p: 2 / 3, valid: 3 });
    expect(voteShare([undefined])).toEqual({ p: 0.5, valid: 0 });
    expect(ensemble([0.2, 0.4, 0.9])).toBeCloseTo(0.5, 12);
  });
});
