import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainLm } from '../../src/algorithms/lm.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, PretrainConfig, RmConfig, SftConfig } from '../../src/config/schema.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * One trainer on both cores, three ways, on the small GPT-2 config (vocab 512, 6 layers, d 384,
 * batch 8 × 128 tokens of pretraining): one replica with one BLAS thread (the default), one
 * replica with two BLAS threads per call, two data-parallel replicas with one each. The BLAS
 * thread count is read when a thread loads the addon, so it is set in the environment the
 * replicas inherit.
 */
async function bothCores(out: string, quick: boolean, log: (line: string) => void): Promise<Row[]> {
  const steps = quick ? 5 : 14;
  const ways = [
    { name: '1 replica, 1 BLAS thread', replicas: 1, blas: '1' },
    { name: '1 replica, 2 BLAS threads', replicas: 1, blas: '2' },
    { name: '2 replicas, 1 BLAS thread each', replicas: 2, blas: '1' },
  ];
  const rows: Row[] = [];
  const saved = process.env.TROUPE_BLAS_THREADS;
  try {
    for (const way of ways) {
      process.env.TROUPE_BLAS_THREADS = way.blas;
      const rates: number[] = [];
      await trainLm(
        await loadConfig<PretrainConfig>('pretrain', {
          object: {
            model: {
              init: { family: 'gpt2', hidden: 384, layers: 6, heads: 6, maxPositions: 256 },
              tokenizer: { train: { vocabSize: 512 } },
            },
            optim: { lr: 1e-3, schedule: 'constant', warmupSteps: 0 },
            train: { steps, batchSize: 8, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
            runtime: { backend: 'wasm', replicas: way.replicas },
            output: join(out, `cores-${way.replicas}-${way.blas}`),
            data: { train: 'data/moby-dick/train.jsonl', blockSize: 128 },
          },
        }),
        {
          events: {
            onMetrics: (s, step, v) => s === 'train' && step > 2 && rates.push(v['tokens_per_s']),
          },
        },
      );
      const value = median(rates);
      log(`small pretrain, ${way.name}: ${value.toFixed(0)} tokens/s`);
      rows.push({
        figure: `small pretrain tokens/s, ${way.name}`,
        value,
        unit: 'tokens/s',
        note: `median of ${rates.length} steps, batch 8 × 128`,
      });
    }
  } finally {
    if (saved === undefined) delete process.env.TROUPE_BLAS_THREADS;
    else process.env.TROUPE_BLAS_THREADS = saved;
  }
  return rows;
}

/** SFT tokens/s and DPO pairs/s through the whole trainer (actors, data, optimizer), tiny model. */
export const algorithmsSuite: Suite = {
  name: 'algorithms',
  description:
    'end-to-end trainer throughput: SFT tokens/s, DPO and reward-model pairs/s (tiny GPT-2, one policy actor, wasm)',
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
      const rmRates: number[] = [];
      await trainPreference(
        await loadConfig<RmConfig>('rm', {
          object: {
            ...common,
            output: join(out, 'rm'),
            data: { train: 'data/sentiment/preferences.jsonl', maxLength: 96 },
          },
        }),
        {
          events: {
            onMetrics: (s, step, v) => s === 'train' && step > 1 && rmRates.push(v['pairs_per_s']),
          },
        },
      );
      rows.push({
        figure: 'reward model pairs/s',
        value: median(rmRates),
        unit: 'pairs/s',
        note: `median of ${rmRates.length} steps, 8 pairs per step (a score head read at one token per row)`,
      });
      log(`RM ${median(rmRates).toFixed(1)} pairs/s`);
      rows.push(...(await bothCores(out, quick, log)));
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
