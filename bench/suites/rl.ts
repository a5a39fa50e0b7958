import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { saveTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const PROMPTS = 16;
const PROMPT_TOKENS = 32;
const NEW_TOKENS = 64;

/** Phases as trainRl times them, in the order a PPO iteration runs them. */
const PHASES = [
  ['generate', 'generate (generator actor, KV cache)'],
  ['logprobs', 'old log-probs (policy)'],
  ['reference', 'reference log-probs'],
  ['reward', 'reward (AFINN lexicon actor)'],
  ['critic', 'critic values'],
  ['update', 'update (policy ∥ critic, 1 epoch, 1 minibatch)'],
  ['sync', 'weight sync (SharedWeights write + read)'],
] as const;

/**
 * One PPO iteration of the small model (V 512, 6 layers, d 384) on 16 prompts of 32 tokens with
 * 64 new tokens each: the time of each phase, and the time spent in messaging (round trips minus
 * the actors' own time, summed over actors).
 */
export const rlSuite: Suite = {
  name: 'rl',
  description: `a PPO iteration per phase: small model (V 512, L 6, d 384), ${PROMPTS} prompts × ${PROMPT_TOKENS} tokens, ${NEW_TOKENS} new tokens, wasm, five actors`,
  async run({ quick, log }) {
    const out = mkdtempSync(join(tmpdir(), 'troupe-bench-rl-'));
    const rows: Row[] = [];
    try {
      const text = readFileSync('data/moby-dick/train.jsonl', 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { text: string }).text);
      const tok = trainBpe(text.slice(0, 20), { vocabSize: 512, minFrequency: 2 });
      await saveTokenizer(join(out, 'tok'), tok);
      // Prompts of exactly 32 tokens: windows of the text, decoded (their ids re-encode the same).
      const ids = tok.encode(text[3]);
      const prompts: string[] = [];
      for (let i = 0; prompts.length < PROMPTS; i += PROMPT_TOKENS) {
        const p = tok.decode(ids.slice(i, i + PROMPT_TOKENS));
        if (tok.encode(p).length === PROMPT_TOKENS) prompts.push(p);
      }
      writeFileSync(
        join(out, 'prompts.jsonl'),
        `${prompts.map((prompt) => JSON.stringify({ prompt })).join('\n')}\n`,
      );
      const steps = quick ? 2 : 4;
      const config = await loadConfig<RlConfig>('ppo', {
        object: {
          output: join(out, 'run'),
          model: {
            init: { family: 'gpt2', hidden: 384, layers: 6, heads: 6, maxPositions: 128 },
            tokenizer: join(out, 'tok', 'tokenizer.json'),
          },
          data: {
            train: join(out, 'prompts.jsonl'),
            eval: join(out, 'prompts.jsonl'),
            maxLength: 64,
          },
          optim: { lr: 1e-5, schedule: 'constant' },
          train: { steps, batchSize: PROMPTS, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
          rollout: { maxNewTokens: NEW_TOKENS },
          reward: { sources: [{ type: 'sentiment' }] },
          runtime: { backend: 'wasm' },
        },
      });
      const iterations: Record<string, number>[] = [];
      await trainRl(config, {
        events: {
          onMetrics: (split, step, v) => {
            if (split !== 'train') return;
            iterations.push({ ...v });
            log(`iteration ${step}: ${v['timing/step_s'].toFixed(2)} s`);
          },
        },
      });
      const measured = iterations.slice(1); // the first iteration warms every actor up
      const step = median(measured.map((m) => m['timing/step_s']));
      for (const [key, label] of PHASES) {
        const s = median(measured.map((m) => m[`timing/${key}_s`]));
        rows.push({
          figure: label,
          value: s,
          unit: 's',
          note: `${((100 * s) / step).toFixed(1)} % of the iteration`,
        });
      }
      rows.push({ figure: 'whole iteration', value: step, unit: 's', note: 'wall clock' });
      const msg = median(measured.map((m) => m['timing/messaging_s']));
      rows.push({
        figure: 'messaging (encode, post, queue, decode; summed over actors)',
        value: msg,
        unit: 's',
        note: `${((100 * msg) / step).toFixed(1)} % of the iteration`,
      });
      const tokens = median(measured.map((m) => m['tokens_per_s']));
      rows.push({
        figure: 'generated tokens per second of iteration',
        value: tokens,
        unit: 'tokens/s',
        note: `${PROMPTS} × ≤ ${NEW_TOKENS} new tokens`,
      });
      log(`iteration ${step.toFixed(2)} s, messaging ${(msg * 1000).toFixed(0)} ms`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const markdown = [
      '| phase | time | share |',
      '|---|---:|---|',
      ...rows.map(
        (r) =>
          `| ${r.figure} | ${r.unit === 's' ? `${r.value.toFixed(3)} s` : `${r.value.toFixed(1)} ${r.unit}`} | ${r.note} |`,
      ),
    ].join('\n');
    return { rows, markdown };
  },
};
