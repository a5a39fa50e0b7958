import { describe, expect, it } from 'vitest';
import { mobyDick, report } from './fixtures.js';
import { goldenCorpus, goldenNames, loadGoldenTokenizer, readGolden } from './golden.js';

/**
 * Troupe against Hugging Face `tokenizers` on every golden file: the ids of ~1,500 varied lines
 * (scripts, emoji with ZWJ and skin tones, NFD input, code, digit runs, whitespace runs, added
 * tokens inside text), with and without special tokens, pairs, and the decoded text.
 */
const corpus = goldenCorpus();
const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

describe.each(goldenNames())('golden parity with tokenizers: %s', (name) => {
  it('encodes and decodes every line as tokenizers does', async () => {
    const g = readGolden(name);
    const tok = await loadGoldenTokenizer(g.source);
    const texts = [...corpus, ...g.specialTexts];
    expect(g.ids).toHaveLength(texts.length);
    const diffs: unknown[] = [];
    const note = (what: string, i: number, ours: unknown, want: unknown) => {
      if (diffs.length < 8) diffs.push({ what, text: texts[i], ours, want });
    };
    let encoded = 0;
    let decoded = 0;
    texts.forEach((text, i) => {
      const ids = tok.encode(text, { addSpecialTokens: false });
      if (same(ids, g.ids[i])) encoded++;
      else note('encode', i, ids, g.ids[i]);
      const back = tok.decode(g.ids[i]);
      if (back === g.decoded[i]) decoded++;
      else note('decode', i, back, g.decoded[i]);
    });
    const specialTexts = [...corpus.slice(0, g.withSpecial.texts), ...g.specialTexts];
    let special = 0;
    specialTexts.forEach((text, i) => {
      const ids = tok.encode(text);
      if (same(ids, g.withSpecial.ids[i])) special++;
      else
        diffs.push({
          what: 'encode with special tokens',
          text,
          ours: ids,
          want: g.withSpecial.ids[i],
        });
    });
    let skipped = 0;
    g.specialTexts.forEach((text, i) => {
      const back = tok.decode(g.ids[corpus.length + i], { skipSpecialTokens: true });
      if (back === g.decodedSkip[i]) skipped++;
      else
        diffs.push({
          what: 'decode skipping special tokens',
          text,
          ours: back,
          want: g.decodedSkip[i],
        });
    });
    let pairs = 0;
    for (const [a, b, want] of g.pairs) {
      const ids = tok.encodePair(a, b);
      if (same(ids, want)) pairs++;
      else diffs.push({ what: 'encodePair', text: [a, b], ours: ids, want });
    }
    report(
      `${name} (${g.kind}): encode ${encoded} / ${texts.length}, decode ${decoded} / ${texts.length}, ` +
        `with special tokens ${special} / ${specialTexts.length}, skip special ${skipped} / ${g.specialTexts.length}, ` +
        `pairs ${pairs} / ${g.pairs.length} equal to tokenizers ${g.tokenizers}`,
    );
    expect(diffs.slice(0, 8)).toEqual([]);
    expect([encoded, decoded, special, skipped, pairs]).toEqual([
      texts.length,
      texts.length,
      specialTexts.length,
      g.specialTexts.length,
      g.pairs.length,
    ]);
  });
});

describe('long inputs', () => {
  it('encodes 300 kB as one string in linear time (the grapheme segmenter of Precompiled is not)', async () => {
    // V8's Intl.Segmenter took 20 s over 100k characters; Troupe segments only non-ASCII runs.
    const tok = await loadGoldenTokenizer(readGolden('t5-unigram').source);
    const text = mobyDick().slice(0, 300_000);
    const t0 = performance.now();
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(ids.length).toBeGreaterThan(text.length / 5);
  });
});
