import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, Supervisor } from '../../src/actors/supervisor.js';
import { REWARD, type RewardRole } from '../../src/algorithms/roles/reward.js';
import { rightPad } from '../../src/data/batching/collate.js';
import { tokenizePreference } from '../../src/data/batching/examples.js';
import type { PreferenceExample } from '../../src/data/datasets/formats.js';
import { saveTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import type { TroupeError } from '../../src/errors.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/config.js';
import { saveModel } from '../../src/policy/io.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import {
  planRewardSources,
  type RewardArgs,
  rewardFromSpec,
  rewardModelSource,
} from '../../src/reward/index.js';
import { useBackend } from '../helpers/backends.js';
import { batchOf } from './helpers.js';

const runtime = { backend: 'cpu' as const };
const KEYWORDS = fileURLToPath(
  new URL('../../examples/rewards/keyword-reward.mjs', import.meta.url),
);
const FIXTURES = fileURLToPath(new URL('./fixtures/user-rewards.mjs', import.meta.url));

const TEXTS = ['the cat sat on the mat', 'a dog ran in the fog', 'cats and dogs and mats'];
const tok = trainBpe(TEXTS, {
  vocabSize: 300,
  minFrequency: 1,
  specialTokens: ['<|endoftext|>', '<|pad|>'],
  eosToken: '<|endoftext|>',
  padToken: '<|pad|>',
});
const config = gpt2Config({
  vocabSize: tok.vocabSize,
  hidden: 16,
  layers: 1,
  heads: 2,
  maxPositions: 64,
});

let dir: string;
let rmDir: string;
let lmDir: string;
let rm: CausalLM;
let sup: Supervisor | undefined;

beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'troupe-reward-actor-'));
  rmDir = join(dir, 'rm');
  lmDir = join(dir, 'lm');
  rm = CausalLM.init(config, { seed: 7, heads: ['score'] });
  await saveModel(rmDir, rm);
  await saveTokenizer(rmDir, tok);
  const lm = CausalLM.init(config, { seed: 7 });
  await saveModel(lmDir, lm);
  await saveTokenizer(lmDir, tok);
  lm.dispose();
});

afterEach(async () => {
  await sup?.shutdown();
  sup = undefined;
});

afterAll(() => {
  rm?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function spawn(args: RewardArgs): Promise<Actor<RewardRole>> {
  sup = new Supervisor();
  return sup.spawn({ name: 'reward', role: REWARD, args }, { runtime });
}

describe('the reward actor', () => {
  it('sums built-in sources with their weights and reports each unweighted part', async () => {
    sup = new Supervisor();
    const [a, single] = await sup.spawnColocated(
      'rewards',
      [
        {
          name: 'reward',
          role: REWARD,
          args: {
            sources: [
              { type: 'exact-match', normalize: 'numeric' },
              { type: 'length', target: 4, weight: 0.5 },
              { type: 'regex', name: 'format', pattern: '^####', penalty: -1, weight: -2 },
            ],
          },
        },
        {
          name: 'single',
          role: REWARD,
          args: { sources: [{ type: 'sentiment', normalize: 'none', weight: 2 }] },
        },
      ] as const,
      { runtime },
    );
    expect(await a.call.names()).toEqual(['exact-match', 'length', 'format']);
    const r = await a.call.score(batchOf(['#### 42', 'good'], { answer: ['42', '0'] }));
    // exact: [1, 0]; length: −|7−4|/4 = −0.75, −0; format: 1, −1.
    expect([...r.parts['exact-match']]).toEqual([1, 0]);
    expect([...r.parts['length']]).toEqual([-0.75, -0]);
    expect([...r.parts['format']]).toEqual([1, -1]);
    expect(Object.keys(r.parts)).toEqual(['exact-match', 'length', 'format']);
    // 1 + 0.5·(−0.75) − 2·1 = −1.375;  0 + 0 − 2·(−1) = 2
    expect([...r.total]).toEqual([-1.375, 2]);

    // One source still reports its part: good = 3, bad = −3 (AFINN), weighted by 2.
    const one = await single.call.score(batchOf(['good', 'bad']));
    expect([...one.parts['sentiment']]).toEqual([3, -3]);
    expect([...one.total]).toEqual([6, -6]);
  });

  it('runs a module source in a task pool inside the actor thread', async () => {
    const a = await spawn({
      sources: [
        { type: 'module', name: 'keywords', path: KEYWORDS, weight: 2 },
        { type: 'module', name: 'echo', path: FIXTURES, exportName: 'echoColumns', weight: 0.5 },
      ],
      poolThreads: 2,
    });
    const batch = batchOf(
      ['The Cat sat on the mat', 'a dog'],
      {
        keywords: [
          ['cat', 'mat'],
          ['dog', 'bone', 'walk', 'park'],
        ],
        bonus: [10, 20],
      },
      ['x', 'yy'],
    );
    const r = await a.call.score(batch);
    expect([...r.parts['keywords']]).toEqual([1, 0.25]);
    // prompt length + completion length + bonus: 1 + 22 + 10, 2 + 5 + 20
    expect([...r.parts['echo']]).toEqual([33, 27]);
    expect([...r.total]).toEqual([2 + 16.5, 0.5 + 13.5]);
    // The pool survives across calls.
    expect([...(await a.call.score(batch)).total]).toEqual([2 + 16.5, 0.5 + 13.5]);
  });

  it('rejects a NaN or a failing source with the source named', async () => {
    const role = (name: string, sources: RewardArgs['sources']) => ({
      name,
      role: REWARD,
      args: { sources },
    });
    sup = new Supervisor();
    const [nan, judge, thrower] = await sup.spawnColocated(
      'rewards',
      [
        role('nan', [
          { type: 'length', target: 4 },
          { type: 'module', name: 'nan', path: FIXTURES, exportName: 'nan' },
        ]),
        role('judge', [
          { type: 'length', target: 4 },
          { type: 'http', name: 'judge', url: 'http://127.0.0.1:1/', retries: 0 },
        ]),
        role('thrower', [
          { type: 'module', name: 'thrower', path: FIXTURES, exportName: 'throws' },
        ]),
      ] as const,
      { runtime },
    );
    await expect(nan.call.score(batchOf(['a', 'b', 'c']))).rejects.toMatchObject({
      code: 'BAD_REWARD',
      message: "reward 'nan': row 1 is NaN",
    });
    const e = (await judge.call.score(batchOf(['a'])).catch((x: unknown) => x)) as TroupeError;
    expect(e.code).toBe('BAD_REWARD');
    expect(e.message).toMatch(
      /^reward 'judge': POST http:\/\/127\.0\.0\.1:1\/ failed after 1 attempt/,
    );
    // A module that throws keeps the pool's code, with the source named and the line it threw at.
    await expect(thrower.call.score(batchOf(['a']))).rejects.toMatchObject({
      code: 'TASK_FAILED',
      message: expect.stringMatching(
        /^reward 'thrower': .*Error: cannot reach the judge \(at .*user-rewards\.mjs:11:9\)$/,
      ),
    });
  });

  it('scores with a reward model exactly as the model does in this thread, in batches', async () => {
    const maxLength = 12;
    const a = await spawn({
      sources: [{ type: 'model', path: rmDir, batchSize: 2, maxLength }],
    });
    expect(await a.call.names()).toEqual(['model']);
    const prompts = ['the cat', 'a dog', '', 'cats and dogs and mats and cats', 'x'];
    const completions = [' sat on the mat', ' ran', 'the fog', ' and the cat sat on the mat', ''];
    const r = await a.call.score(batchOf(completions, {}, prompts));

    // The rows as `troupe rm` tokenises a string pair (prompt, then reply + EOS), cut from the left.
    const rows = prompts.map((prompt, i) => {
      const example = {
        kind: 'preference',
        conversational: false,
        implicitPrompt: false,
        prompt,
        chosen: completions[i],
        rejected: completions[i],
        extra: {},
      } as PreferenceExample;
      const ids = tokenizePreference(tok, example, { appendEos: true })!.chosen;
      expect(ids.at(-1)).toBe(tok.eosTokenId);
      return ids.slice(-maxLength);
    });
    expect(rows[3].length).toBe(maxLength); // the long row was truncated
    const batch = rightPad(rows, tok.padTokenId!);
    const s = tf.tidy(() => rm.scores(rm.forward(batch), batch));
    const want = await s.data();
    s.dispose();
    expect(r.total.length).toBe(5);
    r.parts['model'].forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 5);
    });
    expect([...r.total]).toEqual([...r.parts['model']]);
    // Distinct rows, distinct scores: nothing is mixed up between batches.
    expect(new Set(r.total).size).toBe(5);
  });

  it('fails to start on a model without a score head, naming the directory', async () => {
    const e = (await spawn({ sources: [{ type: 'model', path: lmDir }] }).catch(
      (x: unknown) => x,
    )) as TroupeError;
    expect(e.code).toBe('ACTOR_START_FAILED');
    const cause = e.cause as TroupeError;
    expect(cause.code).toBe('BAD_CHECKPOINT');
    expect(cause.message).toContain(lmDir);
    expect(cause.message).toContain('not a reward model');
    expect(cause.message).toContain('troupe rm');
  });
});

describe('planRewardSources', () => {
  it('names each source by its name or type, with weights defaulting to 1', () => {
    expect(
      planRewardSources({
        sources: [{ type: 'exact-match' }, { type: 'length', target: 3, weight: 0.1, name: 'len' }],
      }),
    ).toEqual([
      { name: 'exact-match', weight: 1, spec: { type: 'exact-match', name: 'exact-match' } },
      { name: 'len', weight: 0.1, spec: { type: 'length', target: 3, name: 'len' } },
    ]);
  });

  it('refuses missing, duplicate or ill-typed sources', () => {
    expect(() => planRewardSources({ sources: [] })).toThrow(
      "reward actor: 'sources' must list at least one reward source",
    );
    expect(() => planRewardSources({} as RewardArgs)).toThrow(/'sources' must list/);
    expect(() =>
      planRewardSources({
        sources: [
          { type: 'regex', pattern: 'a' },
          { type: 'regex', pattern: 'b' },
        ],
      }),
    ).toThrow(
      "reward actor: sources[0] and sources[1] are both 'regex' sources without a 'name'; give each a distinct 'name'",
    );
    expect(() =>
      planRewardSources({
        sources: [
          { type: 'regex', pattern: 'a' },
          { type: 'length', name: 'regex' },
        ],
      }),
    ).toThrow("reward actor: sources[0] and sources[1] are both named 'regex'");
    expect(() => planRewardSources({ sources: [{ type: 'length', weight: Number.NaN }] })).toThrow(
      "reward actor: sources[0] ('length') 'weight' must be a finite number, got NaN",
    );
    expect(() => planRewardSources({ sources: [{ name: 'x' } as never] })).toThrow(
      "reward actor: sources[0] needs a 'type'",
    );
    expect(() => planRewardSources({ sources: [{ type: 'length' }], poolThreads: 0 })).toThrow(
      "reward actor: 'poolThreads' must be an integer > 0, got 0",
    );
  });
});

describe('rewardModelSource', () => {
  it('loads lazily and fails on a model without a score head with BAD_CHECKPOINT', async () => {
    const s = rewardModelSource({ path: lmDir, name: 'rm' });
    await expect(s.score(batchOf(['a']))).rejects.toMatchObject({
      code: 'BAD_CHECKPOINT',
      message: expect.stringMatching(/^reward 'rm': .*\/lm: not a reward model .*troupe rm/),
    });
    await expect(s.load()).rejects.toMatchObject({ code: 'BAD_CHECKPOINT' });
  });

  it('is registered as type model and refuses unknown or bad options', () => {
    expect(rewardFromSpec({ type: 'model', path: rmDir }).name).toBe('reward-model');
    expect(() => rewardFromSpec({ type: 'model', path: rmDir, file: 'x' })).toThrow(
      "rewardModelSource: unknown option 'file'. Known: name, path, batchSize, maxLength.",
    );
    expect(() => rewardFromSpec({ type: 'model' })).toThrow(
      "rewardModelSource option 'path': must be a reward model directory",
    );
    expect(() => rewardFromSpec({ type: 'model', path: rmDir, batchSize: 0 })).toThrow(
      "rewardModelSource option 'batchSize': must be > 0",
    );
  });

  it('refuses a maxLength beyond the model', async () => {
    const s = rewardModelSource({ path: rmDir, maxLength: 65 });
    await expect(s.score(batchOf(['a']))).rejects.toThrow(
      "reward 'reward-model': reward model 'reward-model' option 'maxLength': 65 is more than the model's maxPositions (64)",
    );
  });
});
