import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadHfModel, loadModel } from '../../src/policy/io.js';
import { tokenLogprobs } from '../../src/policy/score.js';
import { resolveModelSource } from '../../src/policy/source.js';
import { useBackend } from '../helpers/backends.js';

/**
 * Adapters PEFT 0.21 made and saved alone (scripts/fixtures/peft_adapters.py, committed): the
 * base found through `base_model_name_or_path` ("../base", relative to the adapter), the adapter
 * merged in, and the log-probs equal to PeftModel's (unmerged) and merge_and_unload()'s.
 */
const DIR = join(import.meta.dirname, '..', 'fixtures', 'peft');

describe('PEFT adapters load in Troupe as PEFT computes them', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  for (const name of ['llama', 'gpt2']) {
    it(`${name}: base via base_model_name_or_path, log-probs = PeftModel's within 1e-5`, async () => {
      const expected = JSON.parse(readFileSync(join(DIR, name, 'expected.json'), 'utf8'));
      const adapter = join(DIR, name, 'adapter');
      const source = await resolveModelSource(adapter);
      expect(source.base).toBe(join(DIR, name, 'base'));
      expect(source.adapters).toEqual([adapter]);
      const model = await loadModel(source);
      const got = (await tokenLogprobs(model, expected.rows)).flat();
      const diff = (want: number[][]) =>
        Math.max(...want.flat().map((v, i) => Math.abs(v - got[i])));
      expect(diff(expected.adapted)).toBeLessThan(1e-5);
      expect(diff(expected.merged)).toBeLessThan(1e-5);
      // … and the adapter is what makes the difference.
      const base = await loadHfModel(source.base);
      const baseLp = (await tokenLogprobs(base, expected.rows)).flat();
      expect(Math.max(...baseLp.map((v, i) => Math.abs(v - got[i])))).toBeGreaterThan(1e-2);
      model.dispose();
      base.dispose();
    });
  }
});
