import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RmConfig } from '../../src/config/schema.js';
import { tokenizePreference } from '../../src/data/batching/index.js';
import type { PreferenceExample } from '../../src/data/datasets/index.js';
import { loadTrainEval } from '../../src/data/split.js';
import { loadTokenizer } from '../../src/data/tokenizer/index.js';
import { loadModel } from '../../src/policy/io.js';
import { maskedLogps } from './fixtures/completion-nll.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-pref-'));

/** A tiny GPT-2 and a BPE trained on the shipped sentiment pairs (positive chosen, negative rejected). */
function config<T>(algorithm: 'dpo' | 'rm', extra: Record<string, unknown>): Promise<T> {
  return loadConfig<T>(algorithm, {
    object: {
      output: tmp(),
      model: {
        init: { family: 'gpt2', hidden: 48, layers: 2, heads: 2, maxPositions: 128 },
        tokenizer: { train: { vocabSize: 512 } },
      },
      data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.1, maxLength: 96 },
      optim: { lr: algorithm === 'dpo' ? 3e-3 : 1e-3, schedule: 'constant', warmupSteps: 5 },
      train: { steps: 60, batchSize: 16, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

describe('preference training on shipped pairs', () => {
  it('DPO raises held-out preference accuracy well above chance', async () => {
    const evals: Record<string, number>[] = [];
    const r = await trainPreference(await config<DpoConfig>('dpo', { dpo: { beta: 0.1 } }), {
      events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
    });
    expect(r.steps).toBe(60);
    // At step 0 the policy equals the reference: every implicit reward is 0, the loss log 2.
    expect(evals[0]['loss']).toBeCloseTo(Math.log(2), 5);
    expect(evals.at(-1)!['rewards/accuracies']).toBeGreaterThan(0.65);
    expect(evals.at(-1)!['loss']).toBeLessThan(0.6);
  }, 240_000);

  it('KTO (pairs unpaired) gives held-out desirable completions higher implicit rewards', async () => {
    const evals: Record<string, number>[] = [];
    await trainPreference(
      await config<DpoConfig>('dpo', {
        dpo: { loss: 'kto', beta: 0.1 },
        train: { steps: 40, batchSize: 16, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      }),
      {
        events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
      },
    );
    const last = evals.at(-1)!;
    expect(last['rewards/chosen'] - last['rewards/rejected']).toBeGreaterThan(0.1);
  }, 240_000);

  it('a Bradley–Terry reward model learns to rank held-out pairs', async () => {
    const evals: Record<string, number>[] = [];
    await trainPreference(await config<RmConfig>('rm', {}), {
      events: { onMetrics: (split, _s, v) => split === 'eval' && evals.push({ ...v }) },
    });
    expect(evals[0]['rm/accuracy']).toBeLessThan(0.6);
    expect(evals.at(-1)!['rm/accuracy']).toBeGreaterThan(0.65);
  }, 240_000);

  it('DPO on 2 data-parallel learners matches 1 learner (loss and metrics per step)', async () => {
    const run = async (replicas: number) => {
      const losses: number[][] = [];
      await trainPreference(
        await config<DpoConfig>('dpo', {
          optim: { lr: 1e-3, warmupSteps: 0 },
          train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
          runtime: { backend: 'wasm', replicas },
        }),
        {
          events: {
            onMetrics: (split, _s, v) =>
              split === 'train' && losses.push([v['loss'], v['rewards/margins']]),
          },
        },
      );
      return losses;
    };
    const [one, two] = [await run(1), await run(2)];
    for (const [i, [l, m]] of one.entries()) {
      expect(Math.abs(l - two[i][0])).toBeLessThan(1e-5);
      expect(Math.abs(m - two[i][1])).toBeLessThan(1e-5);
    }
  }, 240_000);

  // Known answers for the other losses (which this test only checked for finiteness before).
  const short = {
    optim: { lr: 1e-3, warmupSteps: 0 },
    train: { steps: 2, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
  };
  const evalsOf = (evals: Record<string, number>[]) => ({
    events: {
      onMetrics: (split: string, _s: number, v: Readonly<Record<string, number>>) =>
        split === 'eval' && evals.push({ ...v }),
    },
  });

  it('ipo with a live reference actor: the step-0 eval is (0 − 1/(2β))² = 1/(4β²) exactly', async () => {
    // TRL trl/trainer/dpo_trainer.py (dpo_loss, "ipo"): losses = (logits − 1/(2β))², logits the
    // per-token-mean log-ratio margin, 0 while the policy is the reference.
    const evals: Record<string, number>[] = [];
    await trainPreference(
      await config<DpoConfig>('dpo', {
        ...short,
        dpo: { loss: 'ipo', beta: 0.5, reference: 'actor' },
      }),
      evalsOf(evals),
    );
    expect(evals[0]['loss']).toBeCloseTo(1 / (4 * 0.5 ** 2), 5);
    expect(evals[0]['rewards/margins']).toBeCloseTo(0, 6);
    expect(Math.abs(evals[1]['loss'] - evals[0]['loss'])).toBeGreaterThan(1e-4); // it trained
  }, 240_000);

  it('kto on the pairs unpaired: the step-0 eval is mean(λ·(1 − σ(0))) = (λ_D + λ_U)/4', async () => {
    // TRL trl/trainer/kto_trainer.py (kto_loss): 1 − σ(β(ρ − z0)) per desirable example,
    // 1 − σ(β(z0 − ρ)) per undesirable, weighted, concatenated and averaged; ρ = z0 = 0 at step 0,
    // and unpairing gives as many desirable as undesirable examples.
    const evals: Record<string, number>[] = [];
    await trainPreference(
      await config<DpoConfig>('dpo', {
        ...short,
        dpo: { loss: 'kto', beta: 0.1, desirableWeight: 3, undesirableWeight: 1 },
      }),
      evalsOf(evals),
    );
    expect(evals[0]['loss']).toBeCloseTo((3 + 1) / 4, 5);
    expect(evals[0]['kto/kl']).toBeCloseTo(0, 6);
    expect(evals[0]['count/chosen']).toBe(evals[0]['count/rejected']);
  }, 240_000);

  it('simpo: the final eval equals SimPO computed by hand from the saved model', async () => {
    // TRL trl/trainer/cpo_trainer.py (cpo_loss, "simpo"): logits = ā_c − ā_r − γ/β with ā the
    // per-token mean log-prob of a reply, loss −log σ(β·logits); β = 2, γ = 0.5.
    const c = await config<DpoConfig>('dpo', { ...short, dpo: { loss: 'simpo', beta: 2 } });
    const r = await trainPreference(c);
    const tok = await loadTokenizer(join(c.output, 'tokenizer'));
    const { eval: held } = await loadTrainEval({
      train: c.data.train,
      evalFraction: c.data.evalFraction,
      seed: c.seed,
      format: 'preference',
    });
    const pairs = held
      .map((e) =>
        tokenizePreference(tok, e as PreferenceExample, {
          maxLength: c.data.maxLength,
          overlong: 'drop',
          appendEos: true,
        }),
      )
      .filter((p) => p !== undefined)
      .slice(0, c.train.batchSize);
    const model = await loadModel(r.checkpoint!);
    let loss = 0;
    for (const p of pairs) {
      const ch = await maskedLogps(model, p.chosen, p.chosenMask);
      const rj = await maskedLogps(model, p.rejected, p.rejectedMask);
      const z = 2 * (ch.sum / ch.n - rj.sum / rj.n) - 0.5;
      loss += Math.log1p(Math.exp(-z)) / pairs.length; // −log σ(z)
    }
    model.dispose();
    expect(pairs).toHaveLength(4);
    expect(Math.abs(r.finalEval!['loss'] - loss)).toBeLessThan(1e-5);
  }, 240_000);
});
