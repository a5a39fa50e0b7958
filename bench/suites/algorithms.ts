import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainLm } from '../../src/algorithms/lm.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, SftConfig } from '../../src/config/schema.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** SFT tokens/s and DPO pairs/s through the whole trainer (actors, data, optimizer), tiny model. */
export const algorithmsSuite: Suite = {
  name: 'algorithms',
  description:
    'end-to-end trainer throughput: SFT tokens/s and DPO pairs/s (tiny GPT-2, one policy actor, wasm)',
  async run({ quick, log }) {
    const steps = quick ? 6 : 20;
    const out = mkdtempSync(join(tmpdir(), 'troupe-bench-'));
    const model = {
      init: { family: 'gpt2', hidden: 128, layers: 4, heads: 4, maxPositions: 128 },
      tokenizer: { train: { vocabSize: 1024 } },
    };
    const common = {
      model,
      optim: { lr: 1e-3, schedule: 'constant', warmupSteps: 0 },
      train: { steps, batchSize: 8, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
      runtime: { backend: 'wasm' },
    };
    const rows: Row[] = [];
    try {
      const sftRates: number[] = [];
      await trainLm(
        await loadConfig<SftConfig>('sft', {
          object: {
            ...common,
            output: join(out, 'sft'),
            data: {
              train: 'data/sentiment/preferences.jsonl',
              format: 'completion',
              columns: { chosen: 'completion' },
              maxLength: 96,
            },
          },
        }),
        {
          events: {
            onMetrics: (s, step, v) =>
              s === 'train' && step > 1 && sftRates.push(v['tokens_per_s']),
          },
        },
      );
      rows.push({
        figure: 'SFT tokens/s',
        value: median(sftRates),
        unit: 'tokens/s',
        note: `median of ${sftRates.length} steps, batch 8`,
      });
      log(`SFT ${median(sftRates).toFixed(0)} tokens/s`);
      const dpoRates: number[] = [];
      await trainPreference(
        await loadConfig<DpoConfig>('dpo', {
          object: {
            ...common,
            output: join(out, 'dpo'),
            data: { train: 'data/sentiment/preferences.jsonl', maxLength: 96 },
          },
        }),
        {
          events: {
            onMetrics: (s, step, v) => s === 'train' && step > 1 && dpoRates.push(v['pairs_per_s']),
          },
        },
      );
      rows.push({
        figure: 'DPO pairs/s',
        value: median(dpoRates),
        unit: 'pairs/s',
        note: `median of ${dpoRates.length} steps, 8 pairs per step, reference precomputed`,
      });
      log(`DPO ${median(dpoRates).toFixed(1)} pairs/s`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const markdown = [
      '| figure | value | note |',
      '|---|---:|---|',
      ...rows.map((r) => `| ${r.figure} | ${r.value.toFixed(1)} ${r.unit} | ${r.note} |`),
    ].join('\n');
    return { rows, markdown };
  },
};
