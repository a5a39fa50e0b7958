import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadCaiConfig } from '../../src/cai/config.js';
import { loadConstitution } from '../../src/cai/constitution.js';
import { promptTurns } from '../../src/cai/dialogue.js';
import { runCai } from '../../src/cai/pipeline.js';
import { feedbackPrompt } from '../../src/cai/prompts.js';
import type { RlRecord } from '../../src/cai/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig } from '../../src/config/schema.js';
import { saveTokenizer, type Tokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import * as tf from '../../src/kernels/tf.js';
import { gpt2Config } from '../../src/policy/config.js';
import { loadModel, saveModel } from '../../src/policy/io.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { useBackend } from '../helpers/backends.js';
import { startScripted } from './scripted-server.js';

/*
 * The whole pipeline for real on CPU: a tiny fresh GPT-2 (saved as a checkpoint) is the policy,
 * the critic that revises its own answers and the feedback model; SL-CAI (revisions → SFT),
 * RL-CAI (pairs → soft labels → soft-label reward model → PPO), interrupted once and resumed.
 */

const dir = mkdtempSync(join(tmpdir(), 'troupe-cai-tiny-'));
const policy = join(dir, 'policy');
let tok: Tokenizer;

const lines = (f: string) =>
  readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

beforeAll(async () => {
  await useBackend('wasm');
  const texts = [
    ...readFileSync('data/cai/red-team.jsonl', 'utf8').split('\n'),
    ...readFileSync('data/cai/helpful.jsonl', 'utf8').split('\n'),
    readFileSync('data/cai/constitution.yaml', 'utf8'),
  ];
  tok = trainBpe(texts, {
    vocabSize: 400,
    minFrequency: 2,
    specialTokens: ['<|endoftext|>'],
    eosToken: '<|endoftext|>',
    padToken: '<|endoftext|>',
  });
  const config = gpt2Config({
    vocabSize: tok.vocabSize,
    hidden: 32,
    layers: 1,
    heads: 2,
    maxPositions: 256,
    eosTokenId: tok.eosTokenId,
  });
  const model = CausalLM.init(config, { seed: 1 });
  await saveModel(policy, model);
  await saveTokenizer(policy, tok);
  model.dispose();
});

const steps = (n: number, batchSize: number) => ({
  train: { steps: n, batchSize, evalEvery: 0, saveEvery: 0, keepLast: 1 },
  runtime: { backend: 'wasm' },
});

async function config(over: Record<string, unknown> = {}) {
  return loadCaiConfig({
    object: {
      output: join(dir, 'run'),
      seed: 5,
      constitution: 'data/cai/constitution.yaml',
      policy,
      backend: 'wasm',
      batchSize: 4,
      sl: {
        prompts: 'data/cai/red-team.jsonl',
        limit: 8,
        revisions: 2,
        fewShot: 0,
        generation: { maxNewTokens: 10 },
        helpful: { data: 'data/cai/helpful.jsonl', fraction: 0.25 },
        sft: { ...steps(4, 4), data: { evalFraction: 0, maxLength: 160 }, optim: { lr: 1e-3 } },
      },
      rl: {
        prompts: 'data/cai/red-team.jsonl',
        limit: 8,
        feedback: policy,
        principles: 2,
        fewShot: 0,
        generation: { maxNewTokens: 10 },
        rm: { ...steps(4, 4), data: { evalFraction: 0, maxLength: 96 } },
        ppo: { ...steps(2, 2), data: { evalFraction: 0 }, rollout: { maxNewTokens: 6 } },
      },
      ...over,
    },
  });
}

describe('a tiny CAI run on CPU: SL → RM → PPO', () => {
  it('runs every stage, resumes after an interruption, and writes what the trainers read', async () => {
    const c = await config();
    const ac = new AbortController();
    let seen = 0;
    const first = await runCai(c, {
      signal: ac.signal,
      events: {
        // Stop in the RL data stage, after its first batch.
        onMetrics: (_split, _step, v) => {
          if ('label/first' in v && ++seen === 1) ac.abort();
        },
      },
    });
    expect(first.aborted).toBe(true);
    expect(Object.keys(first.stages)).toEqual(['sl-data', 'sft']);
    const second = await runCai(c, { resume: true });
    expect(second.aborted).toBe(false);
    expect(Object.keys(second.stages)).toEqual(['sl-data', 'sft', 'rl-data', 'rm', 'ppo']);
    const run = second.runDir;
    const log = readFileSync(join(run, 'log.txt'), 'utf8');
    expect(log).toContain('resumed; stages done: sl-data, sft');
    expect(readFileSync(join(run, 'rl-data', 'log.txt'), 'utf8')).toContain(
      'resuming after batch 1 (4 records kept)',
    );

    // SL-CAI: 8 revision rows and 8·0.25/0.75 ≈ 3 helpful rows, all in the Human/Assistant form.
    const sft = lines(join(run, 'sl-data', 'sft.jsonl'));
    expect(sft).toHaveLength(8 + 3);
    for (const row of sft) expect(row.prompt).toMatch(/^Human: .*\n\nAssistant:$/s);
    const sl = lines(join(run, 'sl-data', 'records.jsonl'));
    expect(sl).toHaveLength(8);
    expect(sl[0].rounds).toHaveLength(2);
    expect(second.stages['sl-data']).toMatchObject({ prompts: 8, revisionRows: 8, helpfulRows: 3 });

    // RL-CAI: labels from the local model's option log-probs, as soft reward-model rows.
    const rl: RlRecord[] = lines(join(run, 'rl-data', 'records.jsonl'));
    expect(rl).toHaveLength(8);
    const rows = lines(join(run, 'rl-data', 'rm-pairs.jsonl'));
    expect(rows.length).toBe(rl.filter((r) => r.prob !== undefined).length);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.chosen_prob).toBeGreaterThanOrEqual(0.5);
      expect(row.chosen_prob).toBeLessThanOrEqual(1);
    }
    expect(second.stages['rl-data']).toMatchObject({ labelSource: 'logprobs' });

    // One verdict against the feedback model's own next-token distribution, computed apart:
    // softmax over the logits of 'A' and 'B' at the last position of the question.
    const constitution = await loadConstitution('data/cai/constitution.yaml');
    const rec = rl.find((r) => r.prob !== undefined)!;
    const j = rec.judgements![0];
    const [a, b] = j.firstIsA ? rec.responses : [rec.responses[1], rec.responses[0]];
    const q = feedbackPrompt(
      constitution,
      { turns: promptTurns(rec.prompt), principle: constitution.comparisons[j.principle], a, b },
      { shots: 0 },
    );
    const ids = tok.encode(q.text);
    const [idA, idB] = ['A', 'B'].map((o) => tok.encode(o, { addSpecialTokens: false }));
    expect([idA.length, idB.length]).toEqual([1, 1]);
    const feedback = await loadModel(policy);
    const logits = tf.tidy(() => {
      const h = feedback.forward({
        ids: Int32Array.from(ids),
        mask: new Uint8Array(ids.length).fill(1),
        batch: 1,
        length: ids.length,
      });
      return feedback.logits(tf.slice(h, [0, ids.length - 1, 0], [1, 1, feedback.config.hidden]));
    });
    const row = await logits.data();
    logits.dispose();
    feedback.dispose();
    const want = 1 / (1 + Math.exp(row[idB[0]] - row[idA[0]]));
    expect(j.pA).toBeCloseTo(want, 5);

    // The trainers: SFT, the reward model on soft labels, PPO against it.
    expect(readFileSync(join(run, 'rm', 'log.txt'), 'utf8')).toContain(
      `rm loss soft-bradley-terry: ${rows.length} of ${rows.length} training pairs carry chosen_prob`,
    );
    const rmMetrics = lines(join(run, 'rm', 'metrics.jsonl'));
    expect(rmMetrics.at(-1)).toHaveProperty('rm/label_entropy');
    const ppoMetrics = lines(join(run, 'ppo', 'metrics.jsonl')).filter((m) => m.split === 'train');
    expect(ppoMetrics).toHaveLength(2);
    expect(ppoMetrics[0]).toHaveProperty(['reward/cai-rm/mean']);
    for (const stage of ['sl-data', 'sft', 'rl-data', 'rm', 'ppo'])
      expect(existsSync(join(run, stage, 'report.html')), stage).toBe(true);
    expect(second.stages['ppo']['checkpoint']).toMatch(/ppo\/checkpoints\/step-000002$/);

    // A finished run resumed again does nothing but say so.
    const third = await runCai(c, { resume: true });
    expect(Object.keys(third.stages)).toHaveLength(5);

    // The DPO variant reads the SL pairs as they are.
    const dpo = await trainPreference(
      await loadConfig<DpoConfig>('dpo', {
        object: {
          output: join(dir, 'dpo'),
          model: { path: policy },
          data: { train: join(run, 'sl-data', 'pairs.jsonl'), evalFraction: 0, maxLength: 160 },
          train: { steps: 1, batchSize: 2, evalEvery: 0, saveEvery: 0 },
          runtime: { backend: 'wasm' },
        },
      }),
    );
    expect(dpo.steps).toBe(1);
  }, 600_000);

  it('RL-CAI alone with the pairs and labels from an endpoint that gives no log-probs', async () => {
    const server = await startScripted({ noLogprobs: true });
    try {
      const prompts = join(dir, 'pairs-prompts.jsonl');
      writeFileSync(
        prompts,
        Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `[red] #pairs q${i}` })).join(
          '\n',
        ),
      );
      const endpoint = { endpoint: { url: server.url, api: 'completions' } };
      const base = await config();
      const c = await config({
        output: join(dir, 'endpoint-run'),
        sl: undefined,
        rl: {
          ...base.rl,
          prompts,
          limit: undefined,
          sampler: endpoint,
          feedback: endpoint,
          votes: 4,
        },
      });
      const r = await runCai(c);
      expect(Object.keys(r.stages)).toEqual(['rl-data', 'rm', 'ppo']);
      expect(r.stages['rl-data']).toMatchObject({ labelSource: 'votes' });
      const log = readFileSync(join(r.runDir, 'log.txt'), 'utf8');
      expect(log).toContain(
        `endpoint ${server.url}/completions gives no log-probs for the option letters: labels come from 4 sampled votes per question`,
      );
      const rows = lines(join(r.runDir, 'rl-data', 'rm-pairs.jsonl'));
      // Means over 2 principles of vote shares k/4: multiples of 1/8.
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        expect(Math.abs(row.chosen_prob * 8 - Math.round(row.chosen_prob * 8))).toBeLessThan(1e-9);
      }
      expect(readFileSync(join(r.runDir, 'rm', 'log.txt'), 'utf8')).toContain('soft-bradley-terry');
    } finally {
      await server.close();
    }
  }, 600_000);

  it('chat dialogue: rows of messages, rendered by the chat template (ChatML here)', async () => {
    const c = await config({
      output: join(dir, 'chat-run'),
      dialogue: 'chat',
      sl: { ...(await config()).sl, limit: 4, helpful: undefined },
      rl: { ...(await config()).rl, limit: 4 },
    });
    const r = await runCai(c);
    expect(Object.keys(r.stages)).toEqual(['sl-data', 'sft', 'rl-data', 'rm', 'ppo']);
    const sft = lines(join(r.runDir, 'sl-data', 'sft.jsonl'));
    expect(sft[0].prompt).toEqual([{ role: 'user', content: expect.any(String) }]);
    expect(sft[0].completion).toEqual([{ role: 'assistant', content: expect.any(String) }]);
    const rm = lines(join(r.runDir, 'rl-data', 'rm-pairs.jsonl'));
    expect(rm[0].chosen).toEqual([{ role: 'assistant', content: expect.any(String) }]);
    expect(lines(join(r.runDir, 'rl-data', 'prompts.jsonl'))[0].prompt[0].role).toBe('user');
  }, 600_000);
});
