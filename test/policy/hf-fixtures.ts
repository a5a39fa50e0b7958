import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { CausalLM } from '../../src/policy/model/causal-lm.js';
import { tokenLogprobs } from '../../src/policy/score.js';

/**
 * Golden fixtures from transformers (scripts/fixtures/models.py): a tiny random checkpoint of
 * every family Troupe loads, saved by `save_pretrained`, with the per-token log-probs and the
 * greedy KV-cache continuation transformers computed from it. Troupe must load each directory as
 * it is and agree: log-probs within 1e-4, the same greedy tokens.
 */
export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');

export interface Expected {
  readonly model_type: string;
  readonly rows: number[][];
  readonly logprobs: number[][];
  readonly generate: { prompt: number[]; ids: number[]; min_top2_gap: number };
}

export const CASES = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

export const expected = (name: string): Expected =>
  JSON.parse(readFileSync(join(FIXTURES, name, 'expected.json'), 'utf8'));

/**
 * Largest |troupe − transformers| over every scored token of every row. Rows are scored one at a
 * time, as the fixture script scored them (dynamic NTK's RoPE depends on the sequence's length).
 */
export async function maxLogprobDiff(model: CausalLM, want: Expected): Promise<number> {
  let worst = 0;
  for (const [r, row] of want.logprobs.entries()) {
    const [got] = await tokenLogprobs(model, [want.rows[r]]);
    expect(got.length).toBe(row.length);
    row.forEach((lp, t) => {
      worst = Math.max(worst, Math.abs(got[t] - lp));
    });
  }
  return worst;
}
