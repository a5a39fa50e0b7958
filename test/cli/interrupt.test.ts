import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { trainRl } from '../../src/algorithms/rl.js';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { cliArgs } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'troupe-ctrl-c-'));
const STEPS = 40;

function writeConfig(name: string): { file: string; output: string } {
  const output = join(root, name);
  const file = join(root, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      output,
      seed: 3,
      model: {
        init: { family: 'gpt2', hidden: 32, layers: 2, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 300 } },
      },
      data: { train: 'data/moby-dick/eval.jsonl', evalFraction: 0.15, blockSize: 24 },
      optim: { lr: 3e-3, warmupSteps: 2 },
      train: { steps: STEPS, batchSize: 4, evalEvery: 3, evalBatches: 1, saveEvery: 6 },
      runtime: { backend: 'wasm' },
    }),
  );
  return { file, output };
}

/** metrics.jsonl without what differs between two runs of the same steps: clock and speed. */
function metrics(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { time: _t, tokens_per_s: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

const trainLines = (dir: string) =>
  existsSync(join(dir, 'metrics.jsonl'))
    ? readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"split":"train"')).length
    : 0;

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

describe('Ctrl-C during a run, then --resume', () => {
  it('a real SIGINT finishes the step, checkpoints it, exits 130, and the resumed run equals the uninterrupted one', async () => {
    // The uninterrupted run, in this process.
    const straight = writeConfig('straight');
    const quiet = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['pretrain', '--config', straight.file])).toBe(0);
    } finally {
      quiet.mockRestore();
    }

    // The same run as a program, sent SIGINT once it is past its first checkpoint (step 6).
    const cut = writeConfig('interrupted');
    const child = spawn(process.execPath, [...cliArgs(), 'pretrain', '--config', cut.file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b) => {
      stderr += String(b);
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const deadline = Date.now() + 120_000;
    while (trainLines(cut.output) < 7 && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    const code = await exited;
    expect(code, stderr).toBe(130);

    // It stopped after the step under way, checkpointed that step, and said how to go on.
    const k = trainLines(cut.output);
    expect(k).toBeGreaterThanOrEqual(7);
    expect(k).toBeLessThan(STEPS);
    const latest = readJson(join(cut.output, 'checkpoints', 'latest.json'));
    expect(latest).toEqual({ step: k, dir: `step-${String(k).padStart(6, '0')}` });
    expect(stderr).toContain('Ctrl-C: stopping after this step');
    expect(stderr).toContain(
      `interrupted after step ${k} of ${STEPS}; run directory ${cut.output}`,
    );
    expect(stderr).toContain(`checkpoint: ${join(cut.output, 'checkpoints', latest.dir)}`);
    expect(stderr).toContain(`resume with: troupe pretrain --config ${cut.file} --resume`);
    // The last eval is labelled with the step it was taken at, not passed off as final.
    const evals = metrics(cut.output).filter((m) => m['split'] === 'eval');
    const last = evals.at(-1)!;
    expect(last['step']).toBe(Math.floor(k / 3) * 3);
    expect(stderr).toMatch(new RegExp(`last eval \\(step ${last['step']}\\): loss `));
    expect(stderr).not.toContain('final eval');
    // best.json names a checkpoint by an eval of that very step.
    const best = readJson(join(cut.output, 'checkpoints', 'best.json'));
    const ranked = evals.find((e) => e['step'] === best.step);
    expect(ranked?.['loss']).toBe(best.metric.value);

    // Resumed, it finishes exactly as the uninterrupted run did.
    const quiet2 = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['pretrain', '--config', cut.file, '--resume'])).toBe(0);
    } finally {
      quiet2.mockRestore();
    }
    const a = metrics(straight.output);
    expect(a.filter((m) => m['split'] === 'train')).toHaveLength(STEPS);
    expect(metrics(cut.output)).toEqual(a);
    const weights = (d: string) =>
      readFileSync(join(d, 'checkpoints', `step-0000${STEPS}`, 'model.safetensors'));
    expect(weights(cut.output).equals(weights(straight.output))).toBe(true);
    const bestOf = (d: string) => {
      const { step, metric } = readJson(join(d, 'checkpoints', 'best.json'));
      return { step, metric };
    };
    expect(bestOf(cut.output)).toEqual(bestOf(straight.output));
  }, 300_000);
});

describe('an AbortSignal from library code', () => {
  it('GRPO: the result says it was aborted, after which step, and where the checkpoint to resume is', async () => {
    const config = await loadConfig<RlConfig>('grpo', {
      object: {
        output: join(root, 'grpo-abort'),
        model: {
          init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 64 },
          tokenizer: { train: { vocabSize: 300 } },
        },
        data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
        train: { steps: 10, batchSize: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        rollout: { maxNewTokens: 4 },
        reward: { sources: [{ type: 'length', target: 8 }] },
        runtime: { backend: 'wasm' },
      },
    });
    const ac = new AbortController();
    const r = await trainRl(config, {
      signal: ac.signal,
      // Aborted while step 2 is under way (its metrics are being reported).
      events: { onMetrics: (split, step) => split === 'train' && step === 2 && ac.abort() },
    });
    expect(r).toMatchObject({
      aborted: true,
      steps: 2,
      checkpoint: join(root, 'grpo-abort', 'checkpoints', 'step-000002'),
      finalEvalStep: 0,
    });
    expect(existsSync(join(r.checkpoint!, 'model.safetensors'))).toBe(true);
    const resumed = await trainRl(config, { resume: true });
    expect(resumed).toMatchObject({ aborted: false, steps: 10, finalEvalStep: 10 });
  }, 180_000);
});
