import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BEGIN,
  DOC_PATH,
  END,
  README_PATH,
  renderDoc,
  renderReadmeBlock,
} from '../../scripts/docs-algorithms.js';

/*
 * docs/algorithms.md and README's algorithm and loss tables are generated from the registries
 * (as docs/kernel-coverage.md is from its test): the committed text must be what the registries
 * render now. When this fails, run `npm run docs:algorithms` and commit the result.
 */

describe('the docs generated from the registries', () => {
  it('docs/algorithms.md is up to date (npm run docs:algorithms)', () => {
    expect(readFileSync(DOC_PATH, 'utf8')).toBe(renderDoc());
  });

  it("README's generated tables are up to date (npm run docs:algorithms)", () => {
    const readme = readFileSync(README_PATH, 'utf8');
    const block = readme.slice(readme.indexOf(BEGIN), readme.indexOf(END) + END.length);
    expect(block).toBe(renderReadmeBlock());
  });

  it('every algorithm and every preference loss appears in them', () => {
    const doc = renderDoc();
    for (const name of ['pretrain', 'sft', 'rm', 'dpo', 'ppo', 'grpo', 'rloo', 'reinforce'])
      expect(doc).toContain(`| \`troupe ${name}\` |`);
    for (const loss of ['sigmoid', 'ipo', 'simpo', 'orpo', 'kto'])
      expect(renderReadmeBlock()).toContain(`| \`${loss}\` |`);
  });
});
