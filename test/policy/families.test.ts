import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/policy/generate.js';
import { loadModel } from '../../src/policy/io.js';
import type { CausalLM } from '../../src/policy/model/causal-lm.js';
import { BACKEND_CASES, useBackend } from '../helpers/backends.js';
import { CASES, expected, FIXTURES, maxLogprobDiff } from './hf-fixtures.js';

/**
 * Every family against transformers' own numbers (test/fixtures/models, made by
 * scripts/fixtures/models.py): Troupe loads each saved directory as it is and agrees on the
 * per-token log-probs within 1e-4 and on the greedy KV-cache continuation, on every backend.
 */
it('has a fixture for every family Troupe claims', () => {
  expect(CASES).toEqual(
    expect.arrayContaining([
      'gpt2',
      'llama',
      'llama3',
      'llama-linear',
      'llama-dynamic',
      'qwen2',
      'qwen2-yarn',
      'qwen3',
      'mistral',
      'gemma2',
      'gemma3',
      'phi3',
    ]),
  );
});

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`transformers parity on ${backend}`, () => {
    const models = new Map<string, CausalLM>();
    const diffs: string[] = [];
    beforeAll(async () => {
      await useBackend(backend);
    });
    afterAll(() => {
      for (const m of models.values()) m.dispose();
      console.warn(`max |Δ log p| vs transformers on ${backend}: ${diffs.join(', ')}`);
    });
    const model = async (name: string) => {
      if (!models.has(name)) models.set(name, await loadModel(join(FIXTURES, name)));
      return models.get(name)!;
    };

    it.each(CASES)('%s: per-token log-probs equal transformers within 1e-4', async (name) => {
      const want = expected(name);
      const diff = await maxLogprobDiff(await model(name), want);
      diffs.push(`${name} ${diff.toExponential(1)}`);
      expect(diff).toBeLessThan(1e-4);
    });

    it.each(CASES)('%s: greedy generation with the KV cache equals transformers', async (name) => {
      const want = expected(name);
      const out = await generate(await model(name), [want.generate.prompt], {
        maxNewTokens: want.generate.ids.length,
        temperature: 0,
        stopTokenIds: [],
      });
      expect(out.responses[0]).toEqual(want.generate.ids);
    });
  });
}
