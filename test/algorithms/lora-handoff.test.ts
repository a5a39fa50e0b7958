import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { trainRl } from '../../src/algorithms/rl.js';
import { runGenerate } from '../../src/cli/generate.js';
import { runLogprobs } from '../../src/cli/logprobs.js';
import { runMerge } from '../../src/cli/merge.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RlConfig, RmConfig, SftConfig } from '../../src/config/schema.js';
import { rightPad } from '../../src/data/batching/collate.js';
import { CHATML_TEMPLATE, renderChat } from '../../src/data/chat.js';
import { loadTokenizer } from '../../src/data/tokenizer/index.js';
import * as tf from '../../src/kernels/tf.js';
import { generate } from '../../src/policy/generate.js';
import { loadHfModel, loadModel } from '../../src/policy/io.js';
import type { CausalLM } from '../../src/policy/model/causal-lm.js';
import { tokenLogprobs } from '../../src/policy/score.js';
import { rewardModelIds, rewardModelSource } from '../../src/reward/model-source.js';
import { parseMetrics } from '../../src/train/metrics.js';
import { useBackend } from '../helpers/backends.js';
import { cliArgs } from '../helpers/cli.js';

/*
 * A LoRA run's checkpoint handed to the next stage and to every command that takes a model:
 * SFT with LoRA → (its run directory as) DPO's model.path, a reward model trained with LoRA →
 * a `model` reward source and PPO's critic.path, and the same checkpoint given to
 * `troupe logprobs | generate | merge`. Before the model-source resolver each of these read
 * only the base model saved beside the adapter: the adapter was silently dropped.
 */

const root = mkdtempSync(join(tmpdir(), 'troupe-handoff-'));
const PREFS = 'data/sentiment/preferences.jsonl';
const EVAL = join(root, 'eval-pairs.jsonl');
const LLAMA = { family: 'llama', hidden: 32, layers: 2, heads: 4, kvHeads: 2, maxPositions: 96 };

// Eight short pairs, so no row is dropped by maxLength in either stage: the SFT eval rows
// (prompt + chosen) and the DPO eval pairs are then the same token rows and masks.
const lines = readFileSync(PREFS, 'utf8').trim().split('\n');
writeFileSync(
  EVAL,
  `${lines
    .filter((l) => {
      const r = JSON.parse(l);
      return r.chosen.length < 50 && r.rejected.length < 50;
    })
    .slice(0, 8)
    .join('\n')}\n`,
);

const evalAt = (run: string, step: number) =>
  parseMetrics(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).find(
    (r) => r.split === 'eval' && r.step === step,
  )!.values;

async function sft(output: string) {
  const config = await loadConfig<SftConfig>('sft', {
    object: {
      output,
      seed: 1,
      model: {
        init: LLAMA,
        tokenizer: { train: { vocabSize: 320 } },
        lora: { rank: 4, alpha: 16, dropout: 0, targetModules: ['q', 'v', 'down'] },
      },
      data: {
        train: PREFS,
        eval: EVAL,
        format: 'completion',
        columns: { chosen: 'completion' },
        maxLength: 80,
      },
      optim: { lr: 3e-2 },
      train: { steps: 6, batchSize: 4, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      runtime: { backend: 'wasm' },
    },
  });
  return trainLm(config);
}

const sftRun = join(root, 'sft');
const rmRun = join(root, 'rm');
let sftCheckpoint: string;
let rmCheckpoint: string;

describe('LoRA handoff: a LoRA checkpoint is its adapted model everywhere', () => {
  beforeAll(async () => {
    await useBackend('wasm');
    sftCheckpoint = (await sft(sftRun)).checkpoint!;
  }, 300_000);
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('SFT-LoRA → DPO: the DPO run starts from the adapted model (its step-0 eval = the SFT run’s last eval)', async () => {
    const sftLast = evalAt(sftRun, 6);
    const sftBase = evalAt(sftRun, 0); // before training: B = 0, the adapted model is the base
    const config = await loadConfig<DpoConfig>('dpo', {
      object: {
        output: join(root, 'dpo'),
        model: {
          path: sftRun, // the run directory: its best checkpoint
          lora: { rank: 2, alpha: 4, dropout: 0, targetModules: ['q', 'v'] },
        },
        data: { train: PREFS, eval: EVAL, maxLength: 80 },
        train: { steps: 1, batchSize: 4, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
        runtime: { backend: 'wasm' },
      },
    });
    const dpo = await trainPreference(config);
    expect(dpo.modelSource?.checkpoint).toMatchObject({ step: 6, pick: 'best' });
    expect(dpo.modelSource?.adapters).toEqual([sftCheckpoint]);
    const dpo0 = evalAt(join(root, 'dpo'), 0);
    // The quantity both runs report about the same tokens: SFT's eval is the mean NLL of the
    // eval completions' tokens (`loss`, over `tokens` of them); DPO's `logps/chosen` is the mean
    // over its `pairs` of each chosen completion's summed log-prob. Same rows, same masks, so
    //   pairs · logps/chosen = −loss · tokens   (the total log-likelihood of those tokens).
    // (DPO's own loss at step 0 is log 2 whatever the model, since the policy is its reference.)
    const sftTotal = -sftLast['loss'] * sftLast['tokens'];
    const dpoTotal = dpo0['logps/chosen'] * dpo0['pairs'];
    expect(dpo0['pairs']).toBe(8);
    expect(Math.abs(dpoTotal - sftTotal)).toBeLessThan(1e-5 * Math.abs(sftTotal));
    // Not an equality any model would satisfy: the base model (the adapter dropped) differs.
    const baseTotal = -sftBase['loss'] * sftBase['tokens'];
    expect(Math.abs(baseTotal - dpoTotal)).toBeGreaterThan(1);
    const log = readFileSync(join(root, 'dpo', 'log.txt'), 'utf8');
    expect(log).toMatch(
      /model\.path .*: run directory .*: its best checkpoint, step-000006 \(eval\/loss/,
    );
    expect(log).toMatch(
      /LoRA checkpoint .* base \(in the same directory\) with its adapter merged into the weights/,
    );
    expect(log).toMatch(
      /holds a LoRA adapter: it is merged into the base weights first, then fresh LoRA adapters \(rank 2\) train on top/,
    );
  }, 300_000);

  it('troupe logprobs, merge and generate read the adapted model', async () => {
    const tok = await loadTokenizer(sftCheckpoint);
    const rows = ['Write a one-sentence product review: Great.', 'Works well, I love it'].map((t) =>
      tok.encode(t),
    );
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, rows.map((ids) => JSON.stringify({ input_ids: ids })).join('\n'));
    const logged: string[] = [];
    const log = (l: string) => logged.push(l);
    const lpOf = async (model: string) => {
      const out = join(root, `lp-${logged.length}.jsonl`);
      await runLogprobs(
        ['--model', model, '--input', input, '--output', out, '--backend', 'wasm'],
        log,
      );
      return readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).token_logprobs as number[]);
    };
    const adapted = await loadModel(sftCheckpoint);
    const base = await loadHfModel(sftCheckpoint);
    const want = await tokenLogprobs(adapted, rows);
    const baseLp = await tokenLogprobs(base, rows);
    const viaRun = await lpOf(sftRun);
    expect(viaRun).toEqual(want);
    expect(
      Math.max(...viaRun.flat().map((v, i) => Math.abs(v - baseLp.flat()[i]))),
    ).toBeGreaterThan(1e-3);
    expect(logged.join('\n')).toMatch(
      /--model .*sft: run directory .*its best checkpoint, step-000006.*LoRA checkpoint/,
    );

    const merged = join(root, 'merged');
    await runMerge(['--model', sftRun, '--output', merged, '--backend', 'wasm'], log);
    expect(logged.at(-1)).toMatch(
      /wrote .*merged: config\.json, model\.safetensors \(F32\), tokenizer\.json, tokenizer_config\.json/,
    );
    expect(await lpOf(merged)).toEqual(want);

    // generate, greedy: the adapted model's continuation, not the base's.
    let printed = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      printed += String(s);
      return true;
    });
    const prompt = 'Write a one-sentence product review:';
    await runGenerate(
      [
        '--model',
        sftCheckpoint,
        '--prompt',
        prompt,
        '--temperature',
        '0',
        '--max-new-tokens',
        '8',
        '--backend',
        'wasm',
      ],
      log,
    );
    vi.restoreAllMocks();
    const greedy = async (m: CausalLM) => {
      const out = await generate(m, [tok.encode(prompt)], {
        maxNewTokens: 8,
        temperature: 0,
        stopTokenIds: tok.eosTokenId === undefined ? [] : [tok.eosTokenId],
      });
      return `${prompt}${tok.decode(out.responses[0].filter((t) => t !== tok.eosTokenId))}\n`;
    };
    expect(printed).toBe(await greedy(adapted));
    expect(printed).not.toBe(await greedy(base));
    tf.dispose([...adapted.params.values(), ...base.params.values()]);
  }, 300_000);

  it('troupe chat talks with the adapted model', async () => {
    const tok = await loadTokenizer(sftCheckpoint);
    const r = spawnSync(
      process.execPath,
      [
        ...cliArgs(),
        'chat',
        '--model',
        sftRun,
        '--temperature',
        '0',
        '--max-new-tokens',
        '8',
        '--backend',
        'wasm',
      ],
      { input: 'Great phone\n\n', encoding: 'utf8', timeout: 120_000 },
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(
      /--model .*: run directory .*LoRA checkpoint .*with its adapter merged/,
    );
    const text = renderChat(
      tok.chatTemplate ?? CHATML_TEMPLATE,
      [{ role: 'user', content: 'Great phone' }],
      {
        addGenerationPrompt: true,
      },
    );
    const stop = [tok.eosTokenId, tok.tokenToId('<|im_end|>')].filter(
      (x): x is number => x !== undefined,
    );
    const reply = async (m: CausalLM) => {
      const out = await generate(m, [tok.encode(text, { addSpecialTokens: false })], {
        maxNewTokens: 8,
        temperature: 0,
        stopTokenIds: stop,
      });
      m.dispose();
      return tok.decode(out.responses[0].filter((t) => !stop.includes(t))).trim();
    };
    const want = await reply(await loadModel(sftCheckpoint));
    expect(r.stdout).toContain(`model> ${want}\n`);
    expect(want).not.toBe(await reply(await loadHfModel(sftCheckpoint)));
  }, 300_000);

  it('a LoRA reward model scores with its adapter as a `model` reward source; PPO takes it as critic.path', async () => {
    const rmConfig = await loadConfig<RmConfig>('rm', {
      object: {
        output: rmRun,
        model: {
          path: sftCheckpoint,
          lora: { rank: 4, alpha: 16, dropout: 0, targetModules: ['q', 'v'] },
        },
        data: { train: PREFS, eval: EVAL, maxLength: 80 },
        optim: { lr: 3e-2 },
        train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
        runtime: { backend: 'wasm' },
      },
    });
    rmCheckpoint = (await trainPreference(rmConfig)).checkpoint!;
    const batch = {
      prompts: ['Write a one-sentence product review:', 'Write a one-sentence product review:'],
      completions: [' Great phone, love it.', ' Broke in a day.'],
      columns: {},
    };
    const source = rewardModelSource({ path: rmRun });
    const scored = Array.from(await source.score(batch));
    const tok = await loadTokenizer(rmCheckpoint);
    const scoresOf = async (m: CausalLM) => {
      const ids = batch.prompts.map((p, i) => rewardModelIds(tok, p, batch.completions[i], 96));
      const t = rightPad(ids, tok.padTokenId ?? tok.eosTokenId ?? 0);
      const s = tf.tidy(() => m.scores(m.forward(t), t));
      const out = Array.from(await s.data());
      s.dispose();
      m.dispose();
      return out;
    };
    expect(scored).toEqual(await scoresOf(await loadModel(rmCheckpoint)));
    const baseScores = await scoresOf(await loadHfModel(rmCheckpoint));
    expect(Math.max(...scored.map((v, i) => Math.abs(v - baseScores[i])))).toBeGreaterThan(1e-4);

    const ppo = await loadConfig<RlConfig>('ppo', {
      object: {
        output: join(root, 'ppo'),
        model: { path: sftRun },
        critic: { path: rmRun },
        data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
        train: { steps: 1, batchSize: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        rollout: { maxNewTokens: 4 },
        reward: { sources: [{ type: 'model', path: rmRun }] },
        runtime: { backend: 'wasm' },
      },
    });
    const r = await trainRl(ppo);
    expect(r.steps).toBe(1);
    const log = readFileSync(join(root, 'ppo', 'log.txt'), 'utf8');
    for (const field of ['model\\.path', 'critic\\.path', 'reward\\.sources\\[0\\]\\.path'])
      expect(log).toMatch(
        new RegExp(`${field} .*: run directory .*LoRA checkpoint .*with its adapter merged`),
      );
  }, 300_000);
});
