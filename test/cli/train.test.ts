import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import { ALGORITHMS, type Algorithm } from '../../src/cli/train.js';

const root = mkdtempSync(join(tmpdir(), 'troupe-cli-train-'));

/** `main(args)` in this process, with what it wrote to stderr (progress, results, warnings). */
async function troupe(...args: string[]) {
  const err: string[] = [];
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => err.push(String(c)) > 0);
  try {
    const code = await main(args);
    return { code, stderr: err.join('') };
  } finally {
    e.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

const tiny = {
  init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 128 },
  tokenizer: { train: { vocabSize: 300 } },
};

/** The smallest config of each command that trains for real on shipped data. */
function configOf(algorithm: Algorithm, output: string): Record<string, unknown> {
  const common = {
    output,
    model: tiny,
    optim: { lr: 1e-3, schedule: 'constant' },
    train: { steps: 5, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
    runtime: { backend: 'wasm' },
  };
  if (algorithm === 'pretrain')
    return {
      ...common,
      data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.1, blockSize: 24 },
    };
  if (algorithm === 'sft')
    return {
      ...common,
      data: {
        train: 'data/arithmetic/sft-noisy.jsonl',
        format: 'completion',
        evalFraction: 0.05,
        maxLength: 16,
      },
    };
  if (algorithm === 'rm' || algorithm === 'dpo')
    return {
      ...common,
      data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.02, maxLength: 64 },
    };
  return {
    ...common,
    data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
    rollout: { maxNewTokens: 4 },
    reward: {
      sources: [
        { type: 'sentiment' },
        // Never matches: every completion scores 0, which the run must warn about.
        { type: 'regex', name: 'never', pattern: '^NEVER MATCHES$', weight: 0.1 },
      ],
    },
  };
}

function writeConfig(algorithm: Algorithm, extra: Record<string, unknown> = {}) {
  const output = join(root, algorithm);
  const file = join(root, `${algorithm}.yaml`);
  writeFileSync(file, stringify({ ...configOf(algorithm, output), ...extra }));
  return { file, output };
}

const trainSteps = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.split === 'train')
    .map((r) => r.step);

describe('every training command end to end through the CLI', () => {
  it.each(ALGORITHMS)(
    'troupe %s --config run.yaml --train.steps 3 trains, evaluates, checkpoints and reports',
    async (algorithm) => {
      const { file, output } = writeConfig(algorithm);
      // The override beats the file's 5 steps.
      const r = await troupe(algorithm, '--config', file, '--train.steps', '3');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`${algorithm}: 3 steps → ${output}`);
      expect(r.stderr).toContain(
        `done: 3 steps; run directory ${output} (metrics.jsonl, report.html)`,
      );
      expect(r.stderr).toMatch(/final eval \(step 3\): \w/);
      expect(r.stderr).toContain(`checkpoint: ${join(output, 'checkpoints', 'step-000003')}`);
      expect(trainSteps(output)).toEqual([1, 2, 3]);
      expect(existsSync(join(output, 'report.html'))).toBe(true);
      const best = JSON.parse(readFileSync(join(output, 'checkpoints', 'best.json'), 'utf8'));
      expect(best.step).toBe(3);
      if (['ppo', 'grpo', 'rloo', 'reinforce'].includes(algorithm)) {
        // The regex source scored every completion 0 for 3 iterations: said on the terminal
        // and in log.txt.
        const warning =
          "reward 'never' gave every completion the same reward (0) for 3 iterations in a row: its advantages are zero, so the policy learns nothing from it. Check its 'pattern' against a few completions";
        expect(r.stderr).toContain(`[trainer] warn: ${warning}`);
        expect(readFileSync(join(output, 'log.txt'), 'utf8')).toContain(`warning: ${warning}`);
        // The sentiment lexicon warns exactly when its rewards did not vary either.
        const stds = readFileSync(join(output, 'metrics.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
          .filter((m) => m.split === 'train')
          .map((m) => m['reward/sentiment/std']);
        expect(stds).toHaveLength(3);
        expect(r.stderr.includes("reward 'sentiment' gave every completion")).toBe(
          stds.every((x) => x === 0),
        );
      }
    },
    180_000,
  );
});

describe('a failed run', () => {
  it('exits 1 and leaves the error (code, message, actor, reward source) in log.txt, and report.html', async () => {
    const counter = join(root, 'nan-calls');
    writeFileSync(counter, '0');
    process.env.TROUPE_TEST_NAN_COUNTER = counter;
    try {
      const { file, output } = writeConfig('grpo', {
        output: join(root, 'failing'),
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
      const r = await troupe('grpo', '--config', file);
      expect(r.code).toBe(1);
      const out = join(root, 'failing');
      expect(output).not.toBe(out);
      expect(r.stderr).toContain(
        `the run failed: the error is in ${join(out, 'log.txt')} (and report.html)`,
      );
      expect(r.stderr).toMatch(/troupe grpo: \[BAD_REWARD\] .*reward 'flaky': row 0 is NaN/);
      const log = readFileSync(join(out, 'log.txt'), 'utf8');
      // Call 1 was the step-0 eval; calls 2 and 3 trained steps 1 and 2; call 4, step 3's, was NaN.
      expect(log).toMatch(
        /run failed in step 3: \[BAD_REWARD\] .*reward 'flaky': row 0 is NaN \(actor 'reward', reward source 'flaky'\)/,
      );
      expect(existsSync(join(out, 'report.html'))).toBe(true);
      expect(existsSync(join(out, 'checkpoints', 'step-000002', 'model.safetensors'))).toBe(true);
    } finally {
      delete process.env.TROUPE_TEST_NAN_COUNTER;
    }
  }, 180_000);

  it('a bad data file, before the first step, is in log.txt too', async () => {
    const bad = join(root, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{"text": \n');
    const { file } = writeConfig('pretrain', {
      output: join(root, 'bad-data'),
      data: { train: bad, evalFraction: 0.1, blockSize: 24 },
    });
    const r = await troupe('pretrain', '--config', file);
    expect(r.code).toBe(1);
    const log = readFileSync(join(root, 'bad-data', 'log.txt'), 'utf8');
    expect(log).toMatch(new RegExp(`run failed: \\[BAD_DATA\\] ${bad.replaceAll('.', '\\.')}:2`));
    expect(existsSync(join(root, 'bad-data', 'report.html'))).toBe(true);
  }, 60_000);
});
