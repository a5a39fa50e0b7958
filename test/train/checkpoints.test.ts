import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { type CheckpointMetric, RunDir } from '../../src/train/index.js';
import { rejects } from '../helpers/async.js';
import { tmpDir } from './helpers.js';

const evalLoss = (value: number): CheckpointMetric => ({ name: 'eval/loss', value, mode: 'min' });

async function save(run: RunDir, step: number, metric?: CheckpointMetric) {
  await mkdir(run.checkpointDir(step), { recursive: true });
  writeFileSync(join(run.checkpointDir(step), 'model.safetensors'), `weights ${step}`);
  return run.commitCheckpoint(step, { metric });
}

const stepDirs = (dir: string) =>
  readdirSync(join(dir, 'checkpoints'))
    .filter((f) => f.startsWith('step-'))
    .sort();

describe('checkpoints', () => {
  it('checkpointDir pads the step', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: {} });
    expect(run.checkpointDir(123)).toBe(join(dir, 'checkpoints', 'step-000123'));
    expect(run.checkpointDir(1234567)).toBe(join(dir, 'checkpoints', 'step-1234567'));
  });

  it('keep-last-2 over 5 commits keeps the last two and the best (step 2)', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: {}, keepLast: 2 });
    const losses = [3.0, 1.0, 2.0, 1.5, 1.2];
    for (let step = 1; step <= 5; step++) await save(run, step, evalLoss(losses[step - 1]!));
    expect(stepDirs(dir)).toEqual(['step-000002', 'step-000004', 'step-000005']);
    expect(await run.latestCheckpoint()).toEqual({ step: 5, dir: run.checkpointDir(5) });
    expect(await run.bestCheckpoint()).toEqual({
      step: 2,
      dir: run.checkpointDir(2),
      metric: evalLoss(1.0),
    });
    expect(readFileSync(join(run.checkpointDir(2), 'model.safetensors'), 'utf8')).toBe('weights 2');
  });

  it('the best moves when beaten, in max mode too, and NaN never becomes best', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: {}, keepLast: 1 });
    const acc = (value: number): CheckpointMetric => ({ name: 'eval/acc', value, mode: 'max' });
    await save(run, 10, acc(0.5));
    await save(run, 20, acc(Number.NaN));
    expect((await run.bestCheckpoint())!.step).toBe(10);
    expect(stepDirs(dir)).toEqual(['step-000010', 'step-000020']);
    await save(run, 30, acc(0.7));
    expect((await run.bestCheckpoint())!.step).toBe(30);
    expect(stepDirs(dir)).toEqual(['step-000030']);
  });

  it('pointers survive reopening the run', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: {} });
    await save(run, 100, evalLoss(0.9));
    await save(run, 200, evalLoss(1.1));
    const reopened = await RunDir.open(dir);
    expect(await reopened.latestCheckpoint()).toEqual({ step: 200, dir: run.checkpointDir(200) });
    expect((await reopened.bestCheckpoint())?.step).toBe(100);
    expect(JSON.parse(readFileSync(join(dir, 'checkpoints', 'latest.json'), 'utf8'))).toEqual({
      step: 200,
      dir: 'step-000200',
    });
    // No temporary files left behind by the atomic writes.
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual([
      'best.json',
      'latest.json',
      'step-000100',
      'step-000200',
    ]);
  });

  it('no checkpoint yet: latest and best are undefined', async () => {
    const run = await RunDir.create(tmpDir(), { config: {} });
    expect(await run.latestCheckpoint()).toBeUndefined();
    expect(await run.bestCheckpoint()).toBeUndefined();
  });

  it('refuses a commit before the files are written, a step that goes back, or a changed metric', async () => {
    const run = await RunDir.create(tmpDir(), { config: {} });
    expect((await rejects(run.commitCheckpoint(1))).message).toContain('write the checkpoint');
    await save(run, 5, evalLoss(1));
    expect((await rejects(save(run, 4))).message).toContain('steps must not go back');
    const e = await rejects(save(run, 6, { name: 'eval/acc', value: 1, mode: 'max' }));
    expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
    expect(e.message).toContain("ranks checkpoints by 'eval/loss' (min)");
    expect(() => run.checkpointDir(-1)).toThrow('non-negative integer');
  });

  it('a pointer to a deleted checkpoint is an error naming the file', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: {} });
    await save(run, 1);
    rmSync(run.checkpointDir(1), { recursive: true });
    const e = await rejects(run.latestCheckpoint());
    expect(hasCode(e, 'BAD_CHECKPOINT')).toBe(true);
    expect(e.message).toContain(join(dir, 'checkpoints', 'latest.json'));
    expect(e.message).toContain('step-000001, which does not exist');
  });

  it('refuses keepLast below 1', async () => {
    await expect(RunDir.create(tmpDir(), { config: {}, keepLast: 0 })).rejects.toThrow(
      'keepLast must be a positive integer',
    );
  });
});
