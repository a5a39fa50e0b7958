import { describe, expect, it } from 'vitest';
import { gpt2Config } from '../../src/policy/config.js';
import { parseSweepConfig } from '../../src/scaling/config.js';
import { countParams, planJobs } from '../../src/scaling/jobs.js';
import { toCsv } from '../../src/scaling/table.js';

const base = {
  output: '/tmp/sweep',
  models: [
    { name: 'd32', hidden: 32, layers: 2, heads: 2 },
    { name: 'd64', hidden: 64, layers: 2, heads: 2, lr: 1e-3 },
  ],
  pretrain: {
    model: { init: { family: 'gpt2', maxPositions: 65 }, tokenizer: 'tok' },
    data: { train: 'x.jsonl', blockSize: 64 },
    optim: { lr: 3e-3 },
    train: { batchSize: 16 },
  },
};
const gpt2 = (hidden: number, layers: number) =>
  gpt2Config({ vocabSize: 512, hidden, layers, heads: 2, maxPositions: 65 });

describe('countParams', () => {
  it('counts a GPT-2 by hand: 12d² + 13d a block, 2d the final norm, (V + P)·d embeddings (tied)', () => {
    for (const [d, L] of [
      [32, 2],
      [96, 3],
    ]) {
      const c = countParams(gpt2(d, L));
      expect(c.nonEmbedding).toBe(L * (12 * d * d + 13 * d) + 2 * d);
      expect(c.total).toBe(c.nonEmbedding + (512 + 65) * d);
    }
  });
});

describe('planJobs', () => {
  it('IsoFLOP: D = C / 6N tokens rounded to whole steps, a cosine over them, a checkpoint every quarter', () => {
    const sweep = parseSweepConfig({ ...base, flops: [1e12, 3e11] });
    const jobs = planJobs(sweep, (m) => gpt2(m.hidden, m.layers), 'runs/s/tokenizer');
    expect(jobs.map((j) => j.id)).toEqual(['C3e11-d32', 'C3e11-d64', 'C1e12-d32', 'C1e12-d64']);
    const j = jobs[2];
    const n = countParams(gpt2(32, 2)).total;
    expect(j.steps).toBe(Math.round(1e12 / (6 * n) / 1024));
    expect(j.tokens).toBe(j.steps * 1024);
    expect(j.flops).toBe(6 * n * j.tokens);
    expect(Math.abs(j.flops / 1e12 - 1)).toBeLessThan(1024 / j.tokens);
    expect(j.dir).toBe('/tmp/sweep/jobs/C1e12-d32');
    expect(j.config).toMatchObject({
      output: '/tmp/sweep/jobs/C1e12-d32',
      model: {
        init: { family: 'gpt2', maxPositions: 65, hidden: 32, layers: 2, heads: 2 },
        tokenizer: 'runs/s/tokenizer',
      },
      optim: {
        lr: 3e-3,
        schedule: 'cosine',
        warmupSteps: Math.round(0.05 * j.steps),
        minLr: 3e-3 * 0.1,
      },
      train: {
        batchSize: 16,
        steps: j.steps,
        evalEvery: 0,
        saveEvery: Math.ceil(j.steps / 4),
        keepLast: 1,
      },
    });
    // A size's own lr, with the floor at a tenth of it.
    expect(jobs[3].config).toMatchObject({ optim: { lr: 1e-3, minLr: 1e-3 * 0.1 } });
  });

  it('grid: every size trains every token budget; N is non-embedding when asked', () => {
    const sweep = parseSweepConfig({ ...base, tokens: [2.048e5], parameters: 'nonEmbedding' });
    const [a] = planJobs(sweep, (m) => gpt2(m.hidden, m.layers), undefined);
    expect(a.id).toBe('D2.048e5-d32');
    expect(a.steps).toBe(200);
    expect(a.flops).toBe(6 * countParams(gpt2(32, 2)).nonEmbedding * 204800);
  });

  it('refuses a job with fewer steps than minSteps, naming it and what to change', () => {
    const sweep = parseSweepConfig({ ...base, flops: [1e10] });
    expect(() => planJobs(sweep, (m) => gpt2(m.hidden, m.layers), undefined)).toThrow(
      /sweep job C1e10-d64: \d+ tokens at 1024 a step .* fewer than minSteps 20: raise the budget/,
    );
  });
});

describe('sweep config', () => {
  it('refuses both or neither design, a duplicate model name, and fields the sweep sets, by name', () => {
    expect(() => parseSweepConfig({ ...base, flops: [1], tokens: [1] }, 's.yaml')).toThrow(
      /s\.yaml: invalid sweep config:\n {2}flops: set exactly one of 'flops'/,
    );
    expect(() => parseSweepConfig(base)).toThrow(/set exactly one of 'flops'/);
    expect(() =>
      parseSweepConfig({ ...base, flops: [1], models: [base.models[0], base.models[0]] }),
    ).toThrow(/models\.1\.name: 'd32' names two models/);
    expect(() =>
      parseSweepConfig({
        ...base,
        flops: [1],
        pretrain: { ...base.pretrain, train: { steps: 5 }, optim: { schedule: 'linear' } },
      }),
    ).toThrow(/pretrain\.train\.steps, pretrain\.optim\.schedule are set by the sweep/);
    expect(() => parseSweepConfig({ ...base, flops: [1], fit: { bootstrapp: 3 } })).toThrow(
      /fit: unknown key 'bootstrapp'/,
    );
  });
});

describe('results table', () => {
  it('writes a header and one CSV row per job in the columns documented', () => {
    const row = {
      id: 'C1e12-d32',
      model: 'd32',
      hidden: 32,
      layers: 2,
      heads: 2,
      params: 43936,
      nonEmbeddingParams: 25472,
      tokens: 3792896,
      flops: 6 * 43936 * 3792896,
      budgetKind: 'flops' as const,
      budget: 1e12,
      steps: 3704,
      epochs: 6.9,
      lr: 0.003,
      loss: 3.7,
      perplexity: Math.exp(3.7),
      seconds: 45,
    };
    const lines = toCsv([row]).trim().split('\n');
    expect(lines[0]).toBe(
      'id,model,hidden,layers,heads,params,non_embedding_params,tokens,flops,budget_kind,budget,steps,epochs,lr,eval_loss,eval_perplexity,seconds',
    );
    expect(lines[1].split(',').slice(0, 9)).toEqual([
      'C1e12-d32',
      'd32',
      '32',
      '2',
      '2',
      '43936',
      '25472',
      '3792896',
      String(6 * 43936 * 3792896),
    ]);
  });
});

describe('the shipped sweep example', () => {
  it('examples/sweep/moby-dick.yaml loads and plans its 4 budgets × 6 sizes, each job a valid pretraining config', async () => {
    const { loadSweepConfig } = await import('../../src/scaling/config.js');
    const { planSweep } = await import('../../src/scaling/sweep.js');
    const file = new URL('../../examples/sweep/moby-dick.yaml', import.meta.url).pathname;
    const sweep = await loadSweepConfig(file);
    expect(sweep.models.map((m) => m.name)).toEqual(['d16', 'd24', 'd32', 'd48', 'd64', 'd96']);
    const { jobs, configs } = await planSweep(sweep);
    expect(jobs).toHaveLength(24);
    expect(configs.size).toBe(24);
    for (const c of configs.values()) expect(c.train.steps).toBeGreaterThan(0);
  });
});
