import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ActorRun } from '../../src/algorithms/common.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RlConfig } from '../../src/config/schema.js';
import { CRASHING_GENERATOR } from './fixtures/crashing-generator.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-placement-'));

function readMetrics(dir: string, split: 'train' | 'eval'): Record<string, number>[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.split === split);
}

/** The tiny GRPO job of rl.test.ts: a fresh GPT-2 on the sentiment prompts, wasm. */
function grpo(extra: Record<string, unknown> = {}, algorithm: 'grpo' | 'ppo' = 'grpo') {
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

const where = (actors: readonly ActorRun[] | undefined) =>
  Object.fromEntries((actors ?? []).map((a) => [a.actor, a]));

/** Every logged value but the clock's (timings, rates, messaging). */
const numbers = (rows: Record<string, number>[]) =>
  rows.map((m) =>
    Object.fromEntries(
      Object.entries(m).filter(
        ([k]) => !k.startsWith('timing/') && k !== 'tokens_per_s' && k !== 'time',
      ),
    ),
  );

describe('placing actors from config', () => {
  it('GRPO with the reward actor on wasm and the reference colocated with the policy: each ran where it was put, and the numbers are those of the default placement', async () => {
    const placed = await trainRl(
      await grpo({
        actors: { reward: { backend: 'wasm' }, reference: { colocateWith: 'policy' } },
      }),
    );
    const w = where(placed.actors);
    expect(Object.keys(w).sort()).toEqual(['generator', 'policy', 'reference', 'reward']);
    // The reference shares the policy's thread (one runtime, one thread id).
    expect(w['policy'].thread).toBe('policy+reference');
    expect(w['reference'].thread).toBe('policy+reference');
    expect(w['reference'].threadId).toBe(w['policy'].threadId);
    expect(w['reference'].backend).toBe('wasm');
    // The reward actor runs on wasm, in its own thread (its default is cpu, below).
    expect(w['reward']).toMatchObject({ thread: 'reward', backend: 'wasm' });
    expect(w['generator']).toMatchObject({ thread: 'generator', backend: 'wasm' });
    const threads = new Set(Object.values(w).map((a) => a.threadId));
    expect(threads.size).toBe(3);
    expect(threads.has(undefined)).toBe(false);
    const log = readFileSync(join(placed.runDir, 'log.txt'), 'utf8');
    expect(log).toContain('placed policy+reference (policy, reference): backend wasm');
    expect(log).toContain('placed reward: backend wasm');

    const plain = await trainRl(await grpo());
    const d = where(plain.actors);
    expect(d['reward']).toMatchObject({ thread: 'reward', backend: 'cpu' });
    expect(d['reference'].thread).toBe('reference');
    expect(new Set(Object.values(d).map((a) => a.threadId)).size).toBe(4);
    // Placement moves actors, not the maths: every logged value but the clock's is the same.
    expect(numbers(readMetrics(placed.runDir, 'train'))).toEqual(
      numbers(readMetrics(plain.runDir, 'train')),
    );
    expect(placed.finalEval).toEqual(plain.finalEval);
  }, 180_000);

  it('a generator that crashes mid-run is restarted, syncs the latest weights as it starts, and its call is retried', async () => {
    const marker = join(tmp(), 'crashed');
    process.env.TROUPE_TEST_GEN_CRASH_MARKER = marker;
    try {
      const r = await trainRl(await grpo(), { roles: { generator: CRASHING_GENERATOR } });
      expect(existsSync(marker)).toBe(true); // it did crash, sampling step 2
      expect(r.steps).toBe(3);
      const train = readMetrics(r.runDir, 'train');
      // Step 2 was sampled by the restarted generator with step 1's weights, not its start ones.
      expect(train.map((m) => m['rollout/weights_version'])).toEqual([0, 1, 2]);
      for (const m of train) expect(m['rollout/logprob_diff']).toBeLessThan(1e-4);
      const log = readFileSync(join(r.runDir, 'log.txt'), 'utf8');
      expect(log).toMatch(/actor 'generator' restarted/);
      expect(log).toMatch(/generator: the actor crashed .*retrying generator\.generate\(\)/);
      expect(log).toMatch(/\[generator\] info: generator ready \(weights version \d+\)/);
    } finally {
      delete process.env.TROUPE_TEST_GEN_CRASH_MARKER;
    }
  }, 180_000);

  it('a generator colocated with the policy samples with its tensors on its thread: nothing synced, the same run as the default placement', async () => {
    const shared = await trainRl(await grpo({ actors: { generator: { colocateWith: 'policy' } } }));
    const w = where(shared.actors);
    expect(w['generator'].thread).toBe('policy+generator');
    expect(w['policy'].thread).toBe('policy+generator');
    expect(w['generator'].threadId).toBe(w['policy'].threadId);
    expect(w['reference'].threadId).not.toBe(w['policy'].threadId);
    const log = readFileSync(join(shared.runDir, 'log.txt'), 'utf8');
    expect(log).toContain("generator ready, sampling with policy's own weights");
    // nothing else computes while it samples: it takes the cores (2 here unless pinned)
    expect(log).toMatch(/\[generator\] info: \d+ BLAS threads? while sampling/);
    const train = readMetrics(shared.runDir, 'train');
    // Each batch is sampled with the weights of the step before it, as with a synced copy.
    expect(train.map((m) => m['rollout/weights_version'])).toEqual([0, 1, 2]);
    const plain = await trainRl(await grpo());
    expect(new Set(Object.values(where(plain.actors)).map((a) => a.threadId)).size).toBe(4);
    // The same numbers, every one: the generator's copy was exact, so sharing changes nothing.
    expect(numbers(train)).toEqual(numbers(readMetrics(plain.runDir, 'train')));
    expect(shared.finalEval).toEqual(plain.finalEval);
  }, 180_000);

  it("the hybrid engine: two policy replicas, each thread also holding its generator and its reference; every generator samples with its replica's current weights", async () => {
    const r = await trainRl(
      await grpo({
        actors: {
          policy: { replicas: 2 },
          generator: { colocateWith: 'policy' },
          reference: { colocateWith: 'policy' },
        },
      }),
    );
    const w = where(r.actors);
    expect(Object.keys(w).sort()).toEqual([
      'generator/0',
      'generator/1',
      'policy/0',
      'policy/1',
      'reference/0',
      'reference/1',
      'reward',
    ]);
    for (const k of [0, 1]) {
      const thread = `policy/${k}+generator/${k}+reference/${k}`;
      for (const a of ['policy', 'generator', 'reference']) {
        expect(w[`${a}/${k}`].thread).toBe(thread);
        expect(w[`${a}/${k}`].threadId).toBe(w[`policy/${k}`].threadId);
      }
    }
    expect(w['policy/0'].threadId).not.toBe(w['policy/1'].threadId);
    expect(new Set(Object.values(w).map((a) => a.threadId)).size).toBe(3);
    const log = readFileSync(join(r.runDir, 'log.txt'), 'utf8');
    expect(log).toContain('placed policy+generator+reference/0…1 (policy, generator, reference)');
    expect(log).toContain("generator ready, sampling with policy/1's own weights");
    const train = readMetrics(r.runDir, 'train');
    expect(train.map((m) => m['rollout/weights_version'])).toEqual([0, 1, 2]);
    for (const m of train) {
      // the mean over both replicas' rows of |log π at sampling − log π in the update|: a
      // generator sampling with stale or other weights would be far off
      expect(m['rollout/logprob_diff']).toBeLessThan(1e-4);
    }
    // the references score the start weights: no KL at step 0 (the policy is still them), then
    // the KL of a policy that has moved away from them
    expect(train[0]['kl']).toBeLessThan(1e-9);
    expect(train[2]['kl']).toBeGreaterThan(1e-6);
  }, 180_000);

  it('PPO in the hybrid placement: a critic replica beside each policy replica, the two data-parallel groups taking turns (no deadlock in their all-reduces)', async () => {
    const c = await grpo(
      {
        train: { steps: 4, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        actors: {
          policy: { replicas: 2 },
          generator: { colocateWith: 'policy' },
          reference: { colocateWith: 'policy' },
          critic: { colocateWith: 'policy' },
        },
      },
      'ppo',
    );
    const r = await trainRl(c);
    expect(r.steps).toBe(4);
    const w = where(r.actors);
    for (const k of [0, 1]) {
      expect(w[`critic/${k}`].thread).toBe(`policy/${k}+generator/${k}+reference/${k}+critic/${k}`);
      expect(w[`critic/${k}`].threadId).toBe(w[`policy/${k}`].threadId);
    }
    const train = readMetrics(r.runDir, 'train');
    expect(train.map((m) => m['rollout/weights_version'])).toEqual([0, 1, 2, 3]);
    // the critic trained: its loss moved from the first step
    expect(train[3]['critic/loss']).not.toBe(train[0]['critic/loss']);
  }, 180_000);

  it("PPO with its generator colocated takes π_old from the generator: no pass of the policy over the rollout, and the update's own forward agrees with it to float32 rounding", async () => {
    const ppo = (oldLogprobs?: string) =>
      grpo(
        {
          actors: { generator: { colocateWith: 'policy' } },
          ...(oldLogprobs ? { rl: { oldLogprobs } } : {}),
        },
        'ppo',
      );
    const auto = await trainRl(await ppo());
    const recompute = await trainRl(await ppo('recompute'));
    const a = readMetrics(auto.runDir, 'train');
    const r = readMetrics(recompute.runDir, 'train');
    expect(a.length).toBe(3);
    for (const [i, m] of a.entries()) {
      expect(m['timing/logprobs_s'], `step ${i}`).toBe(0); // no π_old pass ran
      expect(r[i]['timing/logprobs_s'], `step ${i}`).toBeGreaterThan(0);
      // the update's forward, with the weights that sampled the batch, against the generator's
      // log-probs: the same model, another kernel path
      expect(m['rollout/logprob_diff'], `step ${i}`).toBeLessThan(1e-4);
      expect(m['actor/entropy'], `step ${i}`).toBeCloseTo(r[i]['actor/entropy'], 4);
    }
    // The first step's update reads the same rollout either way: π_old, the KL reward and the
    // advantages agree to rounding, so do its loss and the critic's.
    expect(a[0]['actor/loss']).toBeCloseTo(r[0]['actor/loss'], 4);
    expect(a[0]['critic/loss']).toBeCloseTo(r[0]['critic/loss'], 4);
    expect(a[0]['kl']).toBeCloseTo(r[0]['kl'], 6);
  }, 180_000);

  it('a crash of the thread a colocated generator shares with the policy stops the run: not retried, as the policy restarted there would have its start weights', async () => {
    const marker = join(tmp(), 'crashed');
    process.env.TROUPE_TEST_GEN_CRASH_MARKER = marker;
    try {
      const c = await grpo({ actors: { generator: { colocateWith: 'policy' } } });
      await expect(trainRl(c, { roles: { generator: CRASHING_GENERATOR } })).rejects.toMatchObject({
        code: 'ACTOR_CRASHED',
        message: expect.stringMatching(/'policy\+generator' died/),
      });
      expect(existsSync(marker)).toBe(true);
      const log = readFileSync(join(c.output, 'log.txt'), 'utf8');
      expect(log).not.toMatch(/retrying generator\.generate/);
    } finally {
      delete process.env.TROUPE_TEST_GEN_CRASH_MARKER;
    }
  }, 180_000);

  it('DPO with a precomputed reference stops the reference once its log-probs are in', async () => {
    const c = await loadConfig<DpoConfig>('dpo', {
      object: {
        output: tmp(),
        model: {
          init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 64 },
          tokenizer: { train: { vocabSize: 300 } },
        },
        data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.1, maxLength: 48 },
        train: { steps: 1, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        runtime: { backend: 'wasm' },
      },
    });
    const r = await trainPreference(c);
    expect(r.steps).toBe(1);
    expect(where(r.actors)['reference']).toMatchObject({ thread: 'reference', backend: 'wasm' });
    const log = readFileSync(join(r.runDir, 'log.txt'), 'utf8');
    expect(log.indexOf('reference actor stopped')).toBeGreaterThan(
      log.indexOf('reference log-probs precomputed'),
    );
  }, 120_000);
});
