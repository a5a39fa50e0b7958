import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { gpt2Config, type ModelConfig } from '../../src/policy/config.js';

/*
 * The GRPO side-by-side of `--suite rl` (#16 item 8): one tiny GPT-2 job (V 512, 4 layers,
 * d 128), 8 prompts of 32 tokens × 8 samples × 32 new tokens, β 0.001 (k3 loss term), a length
 * reward, one optimiser step per iteration: Troupe's `trainRl` in each placement, and TRL 1.13's
 * GRPOTrainer on the same job (bench/torch/trl_grpo.py, the reference venv's Python).
 */

export const GRPO_JOB = {
  prompts: 8,
  samples: 8,
  newTokens: 32,
  hidden: 128,
  layers: 4,
  heads: 4,
  positions: 128,
  beta: 0.001,
  target: 100,
} as const;

/** The job's model: the tiny GPT-2 (V 512) every GRPO profile and A/B script builds. */
export function grpoModelConfig(vocabSize = 512): ModelConfig {
  const j = GRPO_JOB;
  return gpt2Config({
    vocabSize,
    layers: j.layers,
    heads: j.heads,
    hidden: j.hidden,
    maxPositions: j.positions,
  });
}

/** The phases trainRl times, in iteration order. */
export const RL_PHASES = [
  'generate',
  'logprobs',
  'reference',
  'reward',
  'critic',
  'update',
  'sync',
] as const;

/** Per timed iteration: its wall clock and each phase's. */
export type Iteration = Record<string, number>;

export const median = (xs: readonly number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** TROUPE_BLAS_THREADS as this process started (a run's launch sets it for its actors). */
const BLAS_THREADS_AT_START = process.env.TROUPE_BLAS_THREADS;

/**
 * Runs `config` and returns every training iteration's logged metrics. Each run plans its BLAS
 * threads afresh: the previous run's launch left its own count in TROUPE_BLAS_THREADS, which
 * the planner would otherwise take as the user's.
 */
export async function iterationsOf(config: RlConfig): Promise<Iteration[]> {
  if (BLAS_THREADS_AT_START === undefined) delete process.env.TROUPE_BLAS_THREADS;
  else process.env.TROUPE_BLAS_THREADS = BLAS_THREADS_AT_START;
  const out: Iteration[] = [];
  await trainRl(config, {
    events: {
      onMetrics: (split, _step, v) => {
        if (split === 'train') out.push({ ...v });
      },
    },
  });
  return out;
}

/** The Troupe GRPO config of the job, with `actors` placing its actors. */
export function grpoConfig(
  dir: string,
  steps: number,
  actors: Record<string, unknown>,
): Promise<RlConfig> {
  const j = GRPO_JOB;
  return loadConfig<RlConfig>('grpo', {
    object: {
      output: join(dir, `grpo-${Math.random().toString(36).slice(2)}`),
      model: {
        init: {
          family: 'gpt2',
          hidden: j.hidden,
          layers: j.layers,
          heads: j.heads,
          maxPositions: j.positions,
        },
        tokenizer: join(dir, 'tok', 'tokenizer.json'),
      },
      data: { train: join(dir, 'prompts.jsonl'), eval: join(dir, 'prompts.jsonl'), maxLength: 64 },
      optim: { lr: 1e-5, schedule: 'constant' },
      train: { steps, batchSize: j.prompts, evalEvery: 0, evalBatches: 0, saveEvery: 0 },
      rollout: { maxNewTokens: j.newTokens, samplesPerPrompt: j.samples },
      rl: { kl: { mode: 'loss', coef: j.beta, estimator: 'k3' } },
      reward: { sources: [{ type: 'length', target: j.target }] },
      runtime: { backend: 'wasm' },
      actors,
    },
  });
}

export interface TrlRun {
  readonly torch: string;
  readonly trl: string;
  readonly transformers: string;
  readonly threads: number;
  readonly steps: number[];
  readonly cpu: number[];
}

const TRL_SCRIPT = fileURLToPath(new URL('../torch/trl_grpo.py', import.meta.url));

/** The reference venv's Python (TRL, PyTorch 2.13 CPU): TROUPE_TRL_PYTHON overrides it. */
export const TRL_PYTHON = process.env.TROUPE_TRL_PYTHON ?? '/tmp/troupe-anchors/bin/python';

/** Whether TRL imports here, and why not. */
export function trlAvailable(): string | undefined {
  const r = spawnSync(TRL_PYTHON, ['-c', 'import trl, torch'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `${TRL_PYTHON} cannot import trl and torch (../shared/tools/reference-venv.sh builds it; TROUPE_TRL_PYTHON points elsewhere)`;
}

/**
 * TRL's GRPOTrainer on the job at `threads` torch threads (OMP/MKL/OpenBLAS pools fixed before
 * Python starts), `steps` iterations.
 */
export function runTrl(dir: string, steps: number, threads: number): TrlRun {
  const j = GRPO_JOB;
  const out = join(dir, `trl-${threads}.json`);
  const n = String(threads);
  const r = spawnSync(
    TRL_PYTHON,
    [
      TRL_SCRIPT,
      ...['--tokenizer', join(dir, 'tok'), '--prompts', join(dir, 'prompts.jsonl')],
      ...['--out', out, '--steps', String(steps), '--threads', n],
      ...['--prompts-per-step', String(j.prompts), '--samples', String(j.samples)],
      ...['--new-tokens', String(j.newTokens), '--hidden', String(j.hidden)],
      ...['--layers', String(j.layers), '--heads', String(j.heads)],
      ...['--positions', String(j.positions), '--beta', String(j.beta)],
      ...['--target', String(j.target)],
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        OMP_NUM_THREADS: n,
        MKL_NUM_THREADS: n,
        OPENBLAS_NUM_THREADS: n,
        TOKENIZERS_PARALLELISM: 'false',
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
      },
    },
  );
  if (r.status !== 0) {
    throw new Error(`trl_grpo.py failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  }
  return JSON.parse(readFileSync(out, 'utf8')) as TrlRun;
}
