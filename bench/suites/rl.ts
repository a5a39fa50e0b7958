import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { saveTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import {
  GRPO_JOB,
  grpoConfig,
  type Iteration,
  iterationsOf,
  median,
  RL_PHASES,
  runTrl,
  trlAvailable,
} from './rl-grpo.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string; placement?: string };

const PROMPTS = 16;
const PROMPT_TOKENS = 32;
const NEW_TOKENS = 64;

/** Phase labels as trainRl times them, in the order an iteration runs them. */
const LABELS: Record<(typeof RL_PHASES)[number], string> = {
  generate: 'generate (generator, KV cache)',
  logprobs: 'old log-probs (policy)',
  reference: 'reference log-probs',
  reward: 'reward actor',
  critic: 'critic values',
  update: 'update (policy ∥ critic, 1 epoch, 1 minibatch)',
  sync: 'weight sync (SharedWeights write + read; colocated: none)',
};

/**
 * veRL's hybrid engine on 2 cores: two data-parallel policy replicas, each thread also holding a
 * generator that samples with that replica's tensors, a reference (and for PPO a critic
 * replica), each taking half the batch's prompt groups.
 */
const HYBRID = 'hybrid: 2 policy replicas, each thread with its generator, reference (PPO: critic)';

/** The placements each job is timed in: the default, colocations, and the hybrid engine. */
const PLACEMENTS: readonly (readonly [string, Record<string, unknown>])[] = [
  ['default (one thread per actor)', {}],
  ['generator colocated with the policy', { generator: { colocateWith: 'policy' } }],
  [
    'generator and reference colocated with the policy',
    { generator: { colocateWith: 'policy' }, reference: { colocateWith: 'policy' } },
  ],
  [
    HYBRID,
    {
      policy: { replicas: 2 },
      generator: { colocateWith: 'policy' },
      reference: { colocateWith: 'policy' },
    },
  ],
];

/** A placement for `job`: PPO's hybrid also puts a critic replica on each thread. */
function placed(job: string, placement: string, actors: Record<string, unknown>) {
  return job === 'PPO' && placement === HYBRID
    ? { ...actors, critic: { colocateWith: 'policy' } }
    : actors;
}

/** The jobs `--suite rl` times: both, or only one when TROUPE_RL_ONLY names it (profiling). */
export function rlJobs(only: string | undefined = process.env.TROUPE_RL_ONLY): {
  ppo: boolean;
  grpo: boolean;
} {
  if (only === undefined || only === '') return { ppo: true, grpo: true };
  if (only === 'ppo' || only === 'grpo') return { ppo: only === 'ppo', grpo: only === 'grpo' };
  throw new Error(`TROUPE_RL_ONLY must be 'ppo' or 'grpo' (or unset for both), got '${only}'`);
}

/** Tokenizer (V 512) and 16 prompts of exactly 32 tokens, in `dir`. */
export async function writeJobData(dir: string): Promise<void> {
  const text = readFileSync('data/moby-dick/train.jsonl', 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { text: string }).text);
  const tok = trainBpe(text.slice(0, 20), { vocabSize: 512, minFrequency: 2 });
  await saveTokenizer(join(dir, 'tok'), tok);
  // Windows of the text, decoded (their ids re-encode the same).
  const ids = tok.encode(text[3]);
  const prompts: string[] = [];
  for (let i = 0; prompts.length < PROMPTS; i += PROMPT_TOKENS) {
    const p = tok.decode(ids.slice(i, i + PROMPT_TOKENS));
    if (tok.encode(p).length === PROMPT_TOKENS) prompts.push(p);
  }
  writeFileSync(
    join(dir, 'prompts.jsonl'),
    `${prompts.map((prompt) => JSON.stringify({ prompt })).join('\n')}\n`,
  );
}

/** The PPO job: the small model (V 512, 6 layers, d 384), 16 prompts × 64 new tokens. */
export function ppoConfig(dir: string, steps: number, actors: Record<string, unknown>) {
  return loadConfig<RlConfig>('ppo', {
    object: {
      output: join(dir, `ppo-${Math.random().toString(36).slice(2)}`),
      model: {
        init: { family: 'gpt2', hidden: 384, layers: 6, heads: 6, maxPositions: 128 },
        tokenizer: join(dir, 'tok', 'tokenizer.json'),
      },
      data: { train: join(dir, 'prompts.jsonl'), eval: join(dir, 'prompts.jsonl'), maxLength: 64 },
      optim: { lr: 1e-5, schedule: 'constant' },
      train: { steps, batchSize: PROMPTS, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      rollout: { maxNewTokens: NEW_TOKENS },
      reward: { sources: [{ type: 'sentiment' }] },
      runtime: { backend: 'wasm' },
      actors,
    },
  });
}

/** Rows of one placement's timed iterations: each phase, the whole, messaging, tokens/s. */
export function phaseRows(job: string, placement: string, measured: readonly Iteration[]): Row[] {
  const step = median(measured.map((m) => m['timing/step_s']));
  const rows: Row[] = [];
  for (const key of RL_PHASES) {
    const s = median(measured.map((m) => m[`timing/${key}_s`] ?? 0));
    if (s === 0 && (key === 'logprobs' || key === 'critic' || key === 'reference')) continue;
    const share = `${((100 * s) / step).toFixed(1)} % of the iteration`;
    rows.push({ figure: `${job}: ${LABELS[key]}`, value: s, unit: 's', note: share, placement });
  }
  const all = measured.map((m) => m['timing/step_s']);
  const spread = `min ${Math.min(...all).toFixed(3)}, max ${Math.max(...all).toFixed(3)} s over ${all.length}`;
  rows.push({ figure: `${job}: whole iteration`, value: step, unit: 's', note: spread, placement });
  const msg = median(measured.map((m) => m['timing/messaging_s']));
  rows.push({
    figure: `${job}: messaging (round trips − the actors' own time, summed)`,
    value: msg,
    unit: 's',
    note: `${((100 * msg) / step).toFixed(1)} % of the iteration`,
    placement,
  });
  return rows;
}

/**
 * Online RL per phase, in each placement: a PPO iteration of the small model (16 prompts × 32
 * tokens, 64 new tokens), and a GRPO iteration of a tiny GPT-2 side by side with TRL's
 * GRPOTrainer on the same job (rl-grpo.ts). The first 3 iterations of each run (1 --quick) warm
 * it up and are not counted, on both sides; the figures are medians of the next 8 (2).
 */
export const rlSuite: Suite = {
  name: 'rl',
  description: `PPO (small model, ${PROMPTS} prompts × ${NEW_TOKENS} new tokens) and GRPO (tiny GPT-2, ${GRPO_JOB.prompts} prompts × ${GRPO_JOB.samples} samples × ${GRPO_JOB.newTokens} new tokens, beside TRL) iterations per phase and placement, wasm + native kernels`,
  async run({ quick, log }) {
    const out = mkdtempSync(join(tmpdir(), 'troupe-bench-rl-'));
    const rows: Row[] = [];
    const md: string[] = [];
    try {
      await writeJobData(out);
      // Steady state: the first iterations of a run (JIT, heap growth, threads settling; most
      // in the hybrid) are left out on both sides, Troupe's and TRL's alike.
      const warm = quick ? 1 : 3;
      const timed = quick ? 2 : 8;
      const whole: Record<string, number> = {};
      const jobs = rlJobs();
      const makers = [
        ['PPO', ppoConfig],
        ['GRPO', grpoConfig],
      ] as const;
      for (const [job, make] of makers.filter(([j]) => (j === 'PPO' ? jobs.ppo : jobs.grpo))) {
        for (const [placement, actors] of PLACEMENTS) {
          // three scorers in parallel on one thread: kept apart (the hybrid has one per thread)
          if (job === 'PPO' && 'reference' in actors && placement !== HYBRID) continue;
          const its = (
            await iterationsOf(await make(out, warm + timed, placed(job, placement, actors)))
          ).slice(warm);
          const r = phaseRows(job, placement, its);
          rows.push(...r);
          whole[`${job} ${placement}`] = r.find((x) => x.figure.endsWith('whole iteration'))!.value;
          log(`${job}, ${placement}: ${whole[`${job} ${placement}`].toFixed(3)} s per iteration`);
        }
      }
      const missing = jobs.grpo ? trlAvailable() : 'TROUPE_RL_ONLY=ppo';
      if (missing) {
        log(`TRL skipped: ${missing}`);
      } else {
        for (const threads of [2, 1]) {
          const trl = runTrl(out, warm + timed, threads);
          const steps = trl.steps.slice(warm);
          const s = median(steps);
          whole[`TRL ${threads}`] = s;
          rows.push({
            figure: `GRPO: TRL ${trl.trl} GRPOTrainer iteration (PyTorch ${trl.torch}, ${trl.threads} thread${trl.threads === 1 ? '' : 's'})`,
            value: s,
            unit: 's',
            note: `min ${Math.min(...steps).toFixed(3)}, max ${Math.max(...steps).toFixed(3)} s over ${steps.length}; CPU ${median(trl.cpu.slice(warm)).toFixed(2)} s`,
          });
          log(`TRL GRPO, ${threads} thread(s): ${s.toFixed(3)} s per iteration`);
        }
        const best = Math.min(
          ...PLACEMENTS.map(([p]) => whole[`GRPO ${p}`]).filter((x) => x !== undefined),
        );
        const trlBest = Math.min(whole['TRL 2'], whole['TRL 1']);
        rows.push({
          figure: 'GRPO: Troupe (best placement) / TRL (best thread count)',
          value: best / trlBest,
          unit: '×',
          note: 'target ≤ 0.5',
        });
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    md.push('| figure | placement | time | note |', '|---|---|---:|---|');
    for (const r of rows) {
      const v = r.unit === 's' ? `${r.value.toFixed(3)} s` : `${r.value.toFixed(2)} ${r.unit}`;
      md.push(`| ${r.figure} | ${r.placement ?? ''} | ${v} | ${r.note} |`);
    }
    return { rows, markdown: md.join('\n') };
  },
};
