import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainRl } from '../../src/algorithms/rl.js';
import { actionLogProbs } from '../../src/algorithms/roles/logprobs.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/config.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { layoutOf } from '../../src/rollout/assemble.js';
import { read, useBackend } from '../helpers/backends.js';
import { CRASHING_REWARD } from './fixtures/crashing-reward.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-rl-'));

function readMetrics(dir: string, split: 'train' | 'eval'): Record<string, number>[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.split === split);
}

/** A tiny fresh GPT-2 on the shipped sentiment prompts, rewarded by the AFINN lexicon. */
function config(algorithm: RlConfig['algorithm'], extra: Record<string, unknown> = {}) {
  return loadConfig<RlConfig>(algorithm, {
    object: {
      output: tmp(),
      model: {
        init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 300 } },
      },
      data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
      optim: { lr: 1e-3, schedule: 'constant' },
      train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
      rollout: { maxNewTokens: 6 },
      reward: { sources: [{ type: 'sentiment' }, { type: 'length', weight: 0.1, target: 6 }] },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

describe('action log-probs', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('equal a plain log-softmax of logits/τ at the positions that predict each action', async () => {
    const c = gpt2Config({ vocabSize: 23, hidden: 16, layers: 2, heads: 2, maxPositions: 32 });
    const model = CausalLM.init(c, { seed: 3 });
    // Two rows: a left-padded prompt of 2 and a full prompt of 3, responses of 3 and 1 (+ pad).
    const P = 3;
    const A = 3;
    const L = P + A;
    const ids = Int32Array.from([0, 5, 6, 7, 8, 9, 1, 2, 3, 4, 0, 0]);
    const mask = Uint8Array.from([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    const layout = layoutOf({
      sequences: { ids, mask, batch: 2, length: L },
      actionMask: Uint8Array.from([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0]),
      promptLength: P,
    });
    const tau = 0.7;
    const { logp, entropy } = actionLogProbs(model, layout, { temperature: tau, entropy: true });
    const got = await read(logp);
    const gotH = await read(entropy!);
    // Reference: every row alone, unpadded, through model.logits; log-softmax in float64.
    const rows = [
      { tokens: [5, 6, 7, 8, 9], prompt: 2 },
      { tokens: [1, 2, 3, 4], prompt: 3 },
    ];
    for (const [b, row] of rows.entries()) {
      const h = model.forward({
        ids: Int32Array.from(row.tokens),
        mask: new Uint8Array(row.tokens.length).fill(1),
        batch: 1,
        length: row.tokens.length,
      });
      const logits = await read(model.logits(h));
      const V = c.vocabSize;
      for (let j = 0; j < row.tokens.length - row.prompt; j++) {
        const z = Array.from(
          logits.subarray((row.prompt - 1 + j) * V, (row.prompt + j) * V),
          (x) => x / tau,
        );
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
        const want = z[row.tokens[row.prompt + j]] - lse;
        const H = -z.reduce((s, x) => s + Math.exp(x - lse) * (x - lse), 0);
        expect(got[b * A + j]).toBeCloseTo(want, 4);
        expect(gotH[b * A + j]).toBeCloseTo(H, 4);
      }
      h.dispose();
    }
    tf.dispose([logp, entropy!]);
    model.dispose();
  });
});

describe('online RL on worker-thread actors', () => {
  it('GRPO: one loop runs generate → reference ∥ reward → update → sync, logging every phase', async () => {
    const c = await config('grpo', { rl: { miniBatches: 2, epochs: 2 } });
    const r = await trainRl(c);
    expect(r.steps).toBe(3);
    const train = readMetrics(r.runDir, 'train');
    expect(train).toHaveLength(3);
    for (const [i, m] of train.entries()) {
      // The total is the weighted sum of the sources (1 × sentiment + 0.1 × length).
      expect(m['reward/mean']).toBeCloseTo(
        m['reward/sentiment/mean'] + 0.1 * m['reward/length/mean'],
        6,
      );
      // Before the first update the policy is the reference: the rollout's KL is 0, after it not.
      if (i === 0) expect(Math.abs(m['kl'])).toBeLessThan(1e-7);
      else expect(Math.abs(m['kl'])).toBeGreaterThan(1e-7);
      expect(m['actor/kl_loss']).toBeGreaterThanOrEqual(0); // k3 ≥ 0
      expect(m['actor/pg_clipfrac']).toBeGreaterThanOrEqual(0);
      expect(m['actor/pg_clipfrac']).toBeLessThanOrEqual(1);
      // A tiny fresh model is near uniform over the 300 tokens: entropy just under ln 300.
      expect(m['actor/entropy']).toBeLessThan(Math.log(300));
      expect(m['actor/entropy']).toBeGreaterThan(Math.log(300) - 0.5);
      expect(m['response_length/mean']).toBeGreaterThanOrEqual(1);
      expect(m['response_length/mean']).toBeLessThanOrEqual(6);
      expect(m['tokens_per_s']).toBeGreaterThan(0);
      for (const phase of ['generate', 'reference', 'reward', 'update', 'sync']) {
        expect(m[`timing/${phase}_s`], phase).toBeGreaterThanOrEqual(0);
        expect(m[`timing/${phase}_s`], phase).toBeLessThanOrEqual(m['timing/step_s']);
      }
      // The generator samples with exactly the weights the policy scores with (on-policy).
      expect(m['rollout/logprob_diff']).toBeLessThan(1e-4);
    }
    // Four optimiser steps (2 epochs × 2 minibatches) per iteration, published once: each batch
    // is sampled with the weights of the step before it (0: the start weights).
    expect(train.map((m) => m['rollout/weights_version'])).toEqual([0, 1, 2]);
    const evals = readMetrics(r.runDir, 'eval');
    expect(evals.map((e) => e.step)).toEqual([0, 3]);
    for (const e of evals) {
      expect(e['reward']).toBeCloseTo(e['reward/sentiment'] + 0.1 * e['reward/length'], 6);
    }
  }, 120_000);

  it('RLOO and REINFORCE++ on the same loop: advantages and loss as computed by hand', async () => {
    // One new token per response, so token statistics are row statistics, and a reward of
    // i mod 4 for row i: every group of 4 samples scores s = 0, 1, 2, 3 (no KL in the reward).
    const extra = (train: Record<string, unknown>, rollout: Record<string, unknown>) => ({
      train: { steps: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0, ...train },
      rollout: { maxNewTokens: 1, ...rollout },
      rl: { kl: { mode: 'none' } },
      reward: {
        sources: [{ type: 'module', path: resolve('test/algorithms/fixtures/index-reward.mjs') }],
      },
    });
    // RLOO (Ahmadian et al. 2024; TRL trl/trainer/rloo_trainer.py, OpenRLHF "rloo"): a_i =
    // s_i − mean_{j≠i} s_j = k/(k−1)·(s_i − s̄) = 4/3·(−1.5, −0.5, 0.5, 1.5) = (−2, −2/3, 2/3, 2).
    const rloo = readMetrics(
      (await trainRl(await config('rloo', extra({ batchSize: 2 }, { samplesPerPrompt: 4 }))))
        .runDir,
      'train',
    );
    // REINFORCE++ (Hu 2025; OpenRLHF openrlhf/trainer/ppo_utils/experience_maker.py): the return
    // of a one-token response is its reward, whitened over the batch's 8 tokens with the
    // unbiased variance: population std √(7/8), mean 0; the critic-free returns stay raw.
    const rpp = readMetrics(
      (await trainRl(await config('reinforce', extra({ batchSize: 8 }, {})))).runDir,
      'train',
    );
    for (const [m, std] of [
      ...rloo.map((m) => [m, Math.sqrt((4 + 4 / 9 + 4 / 9 + 4) / 4)] as const),
      ...rpp.map((m) => [m, Math.sqrt(7 / 8)] as const),
    ]) {
      expect(m['response_length/mean']).toBe(1);
      expect(m['reward/mean']).toBe(1.5);
      expect(Math.abs(m['advantages/mean'])).toBeLessThan(1e-6);
      expect(m['advantages/std']).toBeCloseTo(std, 6);
      // On-policy, one epoch of one minibatch: ratio 1, so the token-mean loss is −mean(Â) = 0.
      expect(m['actor/pg_clipfrac']).toBe(0);
      expect(Math.abs(m['actor/pg_loss'])).toBeLessThan(1e-6);
    }
    expect(rpp.map((m) => m['returns/mean'])).toEqual([1.5, 1.5]);
    expect(rloo.map((m) => m['returns/mean'])).toEqual(rloo.map((m) => m['advantages/mean']));
  }, 120_000);

  it('survives a reward actor crash: the supervisor restarts it and the run finishes', async () => {
    const marker = join(tmp(), 'crashed');
    process.env.TROUPE_TEST_CRASH_MARKER = marker;
    try {
      const c = await config('grpo', {});
      const r = await trainRl(c, { rewardRole: CRASHING_REWARD });
      expect(existsSync(marker)).toBe(true); // it did crash
      expect(r.steps).toBe(3);
      expect(readMetrics(r.runDir, 'train')).toHaveLength(3);
      const log = readFileSync(join(r.runDir, 'log.txt'), 'utf8');
      expect(log).toMatch(/actor 'reward' restarted/);
      expect(log).toMatch(/reward: the actor crashed/);
    } finally {
      delete process.env.TROUPE_TEST_CRASH_MARKER;
    }
  }, 120_000);

  it('a reward that turns NaN stops the run with an error naming the source; saved steps stay', async () => {
    const counter = join(tmp(), 'calls');
    writeFileSync(counter, '0');
    process.env.TROUPE_TEST_NAN_COUNTER = counter;
    try {
      const c = await config('grpo', {
        train: { steps: 4, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 1 },
        reward: {
          sources: [
            {
              type: 'module',
              name: 'flaky',
              path: resolve('test/algorithms/fixtures/nan-after.mjs'),
            },
          ],
        },
      });
      await expect(trainRl(c)).rejects.toMatchObject({
        code: 'BAD_REWARD',
        message: expect.stringMatching(/flaky/),
      });
      // Call 1 was the step-0 eval; calls 2 and 3 trained steps 1 and 2, each checkpointed.
      expect(existsSync(join(c.output, 'checkpoints', 'step-000002', 'model.safetensors'))).toBe(
        true,
      );
    } finally {
      delete process.env.TROUPE_TEST_NAN_COUNTER;
    }
  }, 120_000);
});
