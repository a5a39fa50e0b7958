import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { loadConfig } from '../../src/config/load.js';
import type { PretrainConfig } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'troupe-long-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a 24 MB single-line document', () => {
  it('pretrains: read, tokenised and packed into ~250k blocks without overflowing the stack', async () => {
    // Moby-Dick's eval text repeated into one JSONL line of 24 MB (generated, not committed).
    const words = readFileSync('data/moby-dick/eval.jsonl', 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l).text as string)
      .join(' ');
    const text = words.repeat(Math.ceil(24e6 / words.length)).slice(0, 24e6);
    const train = join(dir, 'long.jsonl');
    writeFileSync(train, `${JSON.stringify({ text })}\n${JSON.stringify({ text: 'The end.' })}\n`);
    expect(statSync(train).size).toBeGreaterThan(24e6);
    const config = await loadConfig<PretrainConfig>('pretrain', {
      object: {
        output: join(dir, 'run'),
        model: {
          init: { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 128 },
          tokenizer: { train: { vocabSize: 300 } },
        },
        data: { train, evalFraction: 0, blockSize: 64 },
        train: { steps: 1, batchSize: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        runtime: { backend: 'wasm' },
      },
    });
    const r = await trainLm(config);
    expect(r.steps).toBe(1);
  }, 120_000);
});
