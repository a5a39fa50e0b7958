import { readFileSync } from 'node:fs';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { describe, expect, it } from 'vitest';
import { compareIds, corpus, gpt2, packageFile, report, wellFormed } from './fixtures.js';

/** gpt-tokenizer's data/TestPlans.txt: blocks of EncodingName / Sample / Encoded lines. */
function r50kTestPlans(): { sample: string; encoded: number[] }[] {
  const text = readFileSync(packageFile('gpt-tokenizer', 'data/TestPlans.txt'), 'utf8');
  return text
    .split('\n\n')
    .map((block) => block.split('\n'))
    .filter(([name, sample, encoded]) => name === 'EncodingName: r50k_base' && sample && encoded)
    .map(([, sample, encoded]) => ({
      sample: sample.slice('Sample: '.length),
      encoded: JSON.parse(encoded.slice('Encoded: '.length)) as number[],
    }));
}

describe('GPT-2 (fromGpt2Files) parity', () => {
  const tok = gpt2();
  const ours = (s: string) => tok.encode(s);

  it("matches gpt-tokenizer's r50k test plans (golden ids, gpt-tokenizer and gpt-3-encoder)", () => {
    const plans = r50kTestPlans();
    expect(plans.length).toBeGreaterThan(50);
    const golden = new Map(plans.map((p) => [p.sample, p.encoded]));
    const samples = plans.map((p) => p.sample);
    for (const [name, ref] of [
      ['TestPlans golden', (s: string) => golden.get(s)!],
      ['gpt-tokenizer r50k', (s: string) => r50kEncode(s)],
      ['gpt-3-encoder', (s: string) => gpt3Encode(s)],
    ] as const) {
      const { equal, diffs } = compareIds(samples, ours, ref);
      report(
        `parity (r50k test plans vs ${name}): ${samples.length} cases compared, ${equal} equal`,
      );
      expect(diffs).toEqual([]);
      expect(equal).toBe(samples.length);
    }
    for (const s of samples) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('matches gpt-tokenizer r50k and gpt-3-encoder on 10,000 varied lines', () => {
    const lines = corpus(10_000);
    for (const [name, ref] of [
      ['gpt-tokenizer r50k', (s: string) => r50kEncode(s)],
      ['gpt-3-encoder', (s: string) => gpt3Encode(s)],
    ] as const) {
      const { equal, diffs } = compareIds(lines, ours, ref);
      report(`parity (GPT-2 corpus vs ${name}): ${lines.length} cases compared, ${equal} equal`);
      expect(diffs).toEqual([]);
      expect(equal).toBe(lines.length);
    }
    const text = lines.join('\n');
    expect(tok.decode(tok.encode(text))).toBe(wellFormed(text));
  });
});
