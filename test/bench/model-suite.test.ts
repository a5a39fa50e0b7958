import { beforeAll, describe, expect, it } from 'vitest';
import { modelCases, modelTable } from '../../bench/suites/model.js';
import { type ModelCase, measureModel } from '../../bench/suites/model-measure.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/index.js';

/** The suite's measurements on a model small enough to run in a second: no timing thresholds. */
const MICRO: ModelCase = {
  name: 'micro',
  config: gpt2Config({ vocabSize: 32, layers: 2, heads: 2, hidden: 16, maxPositions: 32 }),
  batch: 2,
  seq: 8,
  forwardReps: 1,
  generate: { batches: [1, 2], prompt: 4, newTokens: 3, reps: 1 },
  train: { variants: ['plain', 'checkpoint'], steps: 1, optimizer: true },
  memory: true,
};

describe('bench model suite', () => {
  beforeAll(async () => {
    await startRuntime({ backend: 'wasm' });
  });

  it('measures every figure of a config as a positive finite number, leaking nothing', async () => {
    const lines: string[] = [];
    const streamed: string[] = [];
    const start = tf.memory().numTensors;
    const { rows, notes } = await measureModel(MICRO, {
      backend: 'wasm',
      log: (l) => lines.push(l),
      onRow: (r) => streamed.push(r.figure),
    });
    expect(notes).toEqual([]);
    expect(tf.memory().numTensors).toBe(start);
    const figures = rows.map((r) => r.figure);
    expect(streamed).toEqual(figures);
    expect(figures).toEqual(
      expect.arrayContaining([
        'parameters',
        'train',
        'train (checkpoint)',
        'forward',
        'generate b1',
        'prefill b1',
        'generate b2',
        'prefill b2',
        'fwd+bwd peak',
        'fwd+bwd peak (checkpoint)',
        'checkpoint saves',
        'train step peak',
        'peak RSS',
        'wasm heap',
      ]),
    );
    expect(figures).not.toContain('leaked tensors');
    for (const r of rows) {
      expect(r.backend).toBe('wasm');
      expect(r.config).toBe('micro');
      expect(Number.isFinite(r.value), `${r.figure} = ${r.value}`).toBe(true);
      // What checkpointing saves may be negative on a model this small; everything else counts.
      if (!r.figure.startsWith('checkpoint saves')) {
        expect(r.value, r.figure).toBeGreaterThan(0);
      }
    }
    const train = rows.find((r) => r.figure === 'train')!;
    for (const k of ['ms', 'fwdBwdMs', 'clipMs', 'optMs']) {
      expect(Number.isFinite(train[k]) && (train[k] as number) >= 0, k).toBe(true);
    }
    expect(lines.length).toBe(rows.length);
    expect(lines.some((l) => l.includes('micro') && l.includes('tokens/s'))).toBe(true);

    const md = modelTable(rows, notes);
    expect(md).toContain('| figure | micro |');
    expect(md).toContain('| train tokens/s |');
    expect(md).toContain('No tensors leaked');
  });

  it('times the forward + backward alone when the optimizer is left out', async () => {
    const { rows, notes } = await measureModel(
      {
        ...MICRO,
        generate: undefined,
        train: { variants: ['checkpoint'], steps: 1, optimizer: false, skipReason: 'too big' },
      },
      { backend: 'wasm', log: () => {} },
    );
    expect(notes).toEqual(['too big']);
    const figures = rows.map((r) => r.figure);
    expect(figures).toContain('train fwd+bwd only (checkpoint)');
    expect(figures).toContain('fwd+bwd peak (checkpoint)');
    expect(figures).not.toContain('train');
    expect(figures).not.toContain('train step peak');
    for (const r of rows) expect(r.value, r.figure).toBeGreaterThan(0);
  });

  it('benchmarks the configs the suite promises', () => {
    const full = modelCases('wasm', false);
    expect(full.map((c) => c.name)).toEqual(['tiny', 'small', 'gpt2-124M']);
    const [tiny, small, gpt2] = full;
    expect([
      tiny.config.vocabSize,
      tiny.config.layers,
      tiny.config.heads,
      tiny.config.hidden,
    ]).toEqual([256, 4, 4, 128]);
    expect(tiny.config.maxPositions).toBeGreaterThanOrEqual(128);
    expect([tiny.seq, tiny.batch, small.seq, small.batch, gpt2.seq, gpt2.batch]).toEqual([
      64, 8, 128, 8, 128, 4,
    ]);
    expect([small.config.vocabSize, small.config.layers, small.config.heads]).toEqual([512, 6, 6]);
    expect(small.config.hidden).toBe(384);
    expect(gpt2.config).toMatchObject({ vocabSize: 50257, layers: 12, heads: 12, hidden: 768 });
    expect(modelCases('wasm', true).map((c) => c.name)).toEqual(['tiny', 'small']);
    expect(modelCases('webgpu', false).map((c) => c.name)).toEqual(['tiny']);
  });
});
