import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainLm } from '../../src/algorithms/lm.js';
import { main } from '../../src/cli/main.js';
import { parseSweepConfig } from '../../src/scaling/config.js';
import { planSweep, runSweep } from '../../src/scaling/sweep.js';

const DATA = join(import.meta.dirname, '..', '..', 'data', 'moby-dick');
const root = mkdtempSync(join(tmpdir(), 'troupe-sweep-'));

/** 2 sizes × 3 token budgets of 64-token steps: 24, 48 and 72 steps, tiny models. */
const sweepObject = (output: string, lr = 3e-3) => ({
  output,
  tokens: [1536, 3072, 4608],
  minSteps: 10,
  checkpoints: 3,
  models: [
    { name: 'd8', hidden: 8, layers: 1, heads: 1 },
    { name: 'd16', hidden: 16, layers: 1, heads: 2 },
  ],
  pretrain: {
    seed: 0,
    model: {
      init: { family: 'gpt2', maxPositions: 17 },
      tokenizer: { train: { vocabSize: 300 } },
      dropout: false,
    },
    data: { train: join(DATA, 'train.jsonl'), eval: join(DATA, 'eval.jsonl'), blockSize: 16 },
    optim: { lr },
    train: { batchSize: 4, evalBatches: 4 },
    runtime: { backend: 'wasm' },
  },
  fit: { bootstrap: 20 },
});

describe('troupe sweep (a tiny grid on Moby-Dick)', () => {
  it('a job stopped mid-way resumes from its checkpoint, finished jobs are skipped, the table and report are written', async () => {
    const out = join(root, 'grid');
    const sweep = parseSweepConfig(sweepObject(out));
    const ac = new AbortController();
    // Stop the third job (D1.536e3-d8 and -d16 come first) after its step 10: it checkpoints step 10.
    let job = -1;
    const first = await runSweep(sweep, {
      signal: ac.signal,
      events: {
        onJob: (_j, i) => {
          job = i;
        },
        job: {
          onProgress: (s) => {
            if (job === 2 && s.step >= 10) ac.abort();
          },
        },
      },
    });
    expect(first.aborted).toBe(true);
    expect(first.trained).toEqual(['D1.536e3-d8', 'D1.536e3-d16']);
    expect(first.rows.length).toBe(2);
    const third = join(out, 'jobs', 'D3.072e3-d8');
    expect(existsSync(join(third, 'result.json'))).toBe(false);
    const done = join(out, 'jobs', 'D1.536e3-d8', 'result.json');
    const stamp = statSync(done).mtimeMs;
    const metrics = readFileSync(join(out, 'jobs', 'D1.536e3-d8', 'metrics.jsonl'), 'utf8');

    const second = await runSweep(sweep);
    expect(second.aborted).toBe(false);
    expect(second.skipped).toEqual(['D1.536e3-d8', 'D1.536e3-d16']);
    expect(second.resumed).toEqual(['D3.072e3-d8']);
    expect(second.trained).toEqual(['D3.072e3-d16', 'D4.608e3-d8', 'D4.608e3-d16']);
    // Skipped means untouched.
    expect(statSync(done).mtimeMs).toBe(stamp);
    expect(readFileSync(join(out, 'jobs', 'D1.536e3-d8', 'metrics.jsonl'), 'utf8')).toBe(metrics);
    expect(readFileSync(join(third, 'log.txt'), 'utf8')).toContain('resumed from checkpoint step');

    // The resumed job ends where the same job run straight through ends.
    const { configs } = await planSweep(sweep);
    const straight = await trainLm({
      ...configs.get('D3.072e3-d8')!,
      output: join(root, 'straight'),
    });
    const row = second.rows.find((r) => r.id === 'D3.072e3-d8')!;
    expect(row.steps).toBe(48);
    expect(row.tokens).toBe(48 * 64);
    expect(Math.abs(row.loss - straight.finalEval!['loss'])).toBeLessThan(1e-5);

    // The table: one row per job, in plan order, N and D as planned.
    const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
    expect(csv.length).toBe(7);
    const table = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(table.rows.map((r: { id: string }) => r.id)).toEqual([
      'D1.536e3-d8',
      'D1.536e3-d16',
      'D3.072e3-d8',
      'D3.072e3-d16',
      'D4.608e3-d8',
      'D4.608e3-d16',
    ]);
    for (const r of table.rows) {
      expect(r.flops).toBe(6 * r.params * r.tokens);
      expect(r.loss).toBeGreaterThan(0);
      expect(r.loss).toBeLessThan(Math.log(300) + 0.5);
    }
    // More tokens, lower loss, for the same model.
    const d8 = table.rows.filter((r: { model: string }) => r.model === 'd8');
    expect(d8[2].loss).toBeLessThan(d8[0].loss);

    // A changed config is refused rather than mixed with the jobs already run.
    await expect(runSweep(parseSweepConfig(sweepObject(out, 1e-3)))).rejects.toThrow(
      /sweep job D1.536e3-d8: .* holds a run of another config/,
    );

    // The CLI fits the finished jobs and writes the report, training nothing.
    const file = join(root, 'sweep.yaml');
    const { writeFileSync } = await import('node:fs');
    const { stringify } = await import('yaml');
    writeFileSync(file, stringify(sweepObject(out)));
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => lines.push(s) > 0) as typeof process.stderr.write;
    try {
      expect(await main(['sweep', '--config', file, '--fit-only'])).toBe(0);
    } finally {
      process.stderr.write = write;
    }
    expect(lines.join('')).toMatch(/approach 3: L\(N, D\) = /);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('Fitted constants');
    expect(html).not.toContain('<script');
    expect(readFileSync(join(out, 'svg', 'loss-vs-compute.svg'), 'utf8')).toMatch(/^<svg xmlns=/);
    const fits = JSON.parse(readFileSync(join(out, 'fits.json'), 'utf8'));
    expect(fits.points).toBe(6);
    expect(fits.intervals.resamples).toBe(20);
  }, 240_000);
});
