import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { saveTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import { gpt2Config } from '../../src/policy/config.js';
import { saveModel } from '../../src/policy/io.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { expectClose, useBackend } from '../helpers/backends.js';
import { cliArgs } from '../helpers/cli.js';
import { randomState, TINY } from '../policy/fixtures.js';
import { referenceForward } from '../policy/reference-model.js';

const run = promisify(execFile);
const troupe = (...args: string[]) =>
  run(process.execPath, [...cliArgs(), ...args], { timeout: 60_000 });

describe('troupe logprobs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-lp-'));
  const c = TINY.qwen2;
  const state = randomState(c, 80);

  beforeAll(async () => {
    await useBackend('cpu');
    const model = CausalLM.fromState(c, state);
    await saveModel(join(dir, 'model'), model);
    model.dispose();
  });

  it('writes per-token log-probs and totals equal to the float64 reference, one line per input line', async () => {
    const rows = [[1, 2, 3, 4, 5], [7], [3, 9, 11]];
    const input = join(dir, 'in.jsonl');
    writeFileSync(input, `${rows.map((r) => JSON.stringify({ input_ids: r })).join('\n')}\n\n`);
    const output = join(dir, 'out.jsonl');
    const { stderr } = await troupe(
      'logprobs',
      '--model',
      join(dir, 'model'),
      '--input',
      input,
      '--output',
      output,
      '--batch-size',
      '2',
      '--backend',
      'wasm',
    );
    expect(stderr).toContain('wrote 3 lines');
    const lines = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    rows.forEach((r, i) => {
      const { logits } = referenceForward(c, state, [r], [r.map(() => 1)]);
      const want = r.slice(1).map((tok, t) => {
        const z = logits.subarray(t * c.vocabSize, (t + 1) * c.vocabSize);
        const m = Math.max(...z);
        return z[tok] - m - Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
      });
      expect(lines[i].input_ids).toEqual(r);
      expectClose(lines[i].token_logprobs, want, { atol: 1e-4, rtol: 1e-4, what: `line ${i + 1}` });
      expect(lines[i].total).toBeCloseTo(
        want.reduce((s, v) => s + v, 0),
        3,
      );
      expect(lines[i].num_scored).toBe(r.length - 1);
    });
    expect(lines[1].perplexity).toBeNull();
  });

  it('scores {"text"} lines with the tokenizer saved beside the model, as their encoded ids', async () => {
    const tok = trainBpe(['the cat sat on the mat', 'a dog ran in the fog', 'cats and dogs'], {
      vocabSize: 270,
      minFrequency: 1,
      specialTokens: ['<|endoftext|>'],
    });
    const g = gpt2Config({
      vocabSize: tok.vocabSize,
      hidden: 16,
      layers: 1,
      heads: 2,
      maxPositions: 64,
    });
    const model = CausalLM.init(g, { seed: 3 });
    const mdir = join(dir, 'with-tokenizer');
    await saveModel(mdir, model);
    await saveTokenizer(mdir, tok);
    model.dispose();
    const input = join(dir, 'text.jsonl');
    const ids = tok.encode('the cat ran');
    writeFileSync(
      input,
      `${JSON.stringify({ text: 'the cat ran' })}\n${JSON.stringify({ input_ids: ids })}\n`,
    );
    const output = join(dir, 'text-out.jsonl');
    await troupe('logprobs', '--model', mdir, '--input', input, '--output', output);
    const [a, b] = readFileSync(output, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(a.input_ids).toEqual(ids);
    // Equal up to float32 rounding: a BLAS may order a row's sums by its place in the batch.
    expect(a.token_logprobs).toHaveLength(b.token_logprobs.length);
    a.token_logprobs.forEach((x: number, i: number) => {
      expect(x).toBeCloseTo(b.token_logprobs[i], 5);
    });
  });

  it('names the file and line of bad input and leaves no output file', async () => {
    const input = join(dir, 'bad.jsonl');
    writeFileSync(input, '{"input_ids": [1, 2]}\n{"input_ids": [1, 999]}\n');
    const output = join(dir, 'bad-out.jsonl');
    await expect(
      troupe('logprobs', '--model', join(dir, 'model'), '--input', input, '--output', output),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining(
        `${input}:2: input_ids[1] = 999 is not a token id in [0, ${c.vocabSize})`,
      ),
    });
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.partial`)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    writeFileSync(input, '{"text": "hello"}\n');
    await expect(
      troupe('logprobs', '--model', join(dir, 'model'), '--input', input, '--output', output),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining(`${input}:1: 'text' needs a tokenizer`),
    });
  });
});
