import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { parseMetrics, RunDir } from '../../src/train/index.js';
import { rejects } from '../helpers/async.js';
import { fakeClock, tmpDir } from './helpers.js';

const CONFIG = { model: { layers: 2 }, lr: 0.001, name: 'tiny' };

describe('RunDir.create / open', () => {
  it('writes the config as YAML and JSON into a new directory', async () => {
    const dir = join(tmpDir(), 'run');
    const run = await RunDir.create(dir, { config: CONFIG });
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))).toEqual(CONFIG);
    expect(readFileSync(join(dir, 'config.yaml'), 'utf8')).toBe(
      'model:\n  layers: 2\nlr: 0.001\nname: tiny\n',
    );
    expect(await run.readConfig()).toEqual(CONFIG);
    expect(existsSync(join(dir, 'checkpoints'))).toBe(true);
    expect(run.resumedFrom).toBeUndefined();
  });

  it('refuses a non-empty directory without resume, saying what to do', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const e = await rejects(RunDir.create(dir, { config: CONFIG }));
    expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
    expect(e.message).toContain('is not empty (notes.txt)');
    expect(e.message).toContain('--resume');
    expect(e.message).toContain('--output');
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });

  it('refuses to resume in a non-empty directory that holds no run', async () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    const e = await rejects(RunDir.create(dir, { config: CONFIG, resume: true }));
    expect(e.message).toContain('not a Troupe run directory');
  });

  it('resume on an empty directory starts a new run', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: CONFIG, resume: true });
    expect(run.resumedFrom).toBeUndefined();
    expect(readdirSync(dir).sort()).toEqual([
      'checkpoints',
      'config.json',
      'config.yaml',
      'log.txt',
    ]);
  });

  it('open refuses a directory that is not a run', async () => {
    const e = await rejects(RunDir.open(join(tmpDir(), 'missing')));
    expect(e.message).toContain('it does not exist');
  });

  it('resume continues from the latest checkpoint: later metrics and uncommitted saves are dropped', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: CONFIG });
    for (let step = 1; step <= 5; step++) {
      run.appendMetrics(step, { loss: 10 - step }, { split: 'train' });
      if (step === 3) {
        await mkdir(run.checkpointDir(3), { recursive: true });
        await run.commitCheckpoint(3);
      }
    }
    // A save of step 5 that crashed before its commit.
    await mkdir(run.checkpointDir(5), { recursive: true });

    const again = await RunDir.create(dir, { config: { ...CONFIG, lr: 0.002 }, resume: true });
    expect(again.resumedFrom).toEqual({ step: 3, dir: join(dir, 'checkpoints', 'step-000003') });
    expect(parseMetrics(readFileSync(again.metricsPath, 'utf8')).map((r) => r.step)).toEqual([
      1, 2, 3,
    ]);
    expect(readdirSync(join(dir, 'checkpoints')).sort()).toEqual(['latest.json', 'step-000003']);
    expect((await again.readConfig()) as typeof CONFIG).toMatchObject({ lr: 0.002 });
    expect(readFileSync(again.logPath, 'utf8')).toContain('resumed from checkpoint step 3');
  });

  it('resume without any checkpoint starts the metrics over', async () => {
    const dir = tmpDir();
    const run = await RunDir.create(dir, { config: CONFIG });
    run.appendMetrics(0, { loss: 1 }, { split: 'eval' });
    const again = await RunDir.create(dir, { config: CONFIG, resume: true });
    expect(readFileSync(again.metricsPath, 'utf8')).toBe('');
  });
});

describe('metrics.jsonl and log.txt', () => {
  it('appends one JSON line per call, with step, split and time first', async () => {
    const clock = fakeClock(1_700_000_000_000);
    const run = await RunDir.create(tmpDir(), { config: {}, now: clock.now });
    run.appendMetrics(1, { loss: 2.5, 'actor/kl': 0.01 }, { split: 'train' });
    clock.set(1_700_000_000_500);
    run.appendMetrics(1, { loss: 2.75 }, { split: 'eval' });
    expect(readFileSync(run.metricsPath, 'utf8')).toBe(
      '{"step":1,"split":"train","time":1700000000,"loss":2.5,"actor/kl":0.01}\n' +
        '{"step":1,"split":"eval","time":1700000000.5,"loss":2.75}\n',
    );
  });

  it('keeps NaN and ±Inf (as strings JSON can hold) and reads them back', async () => {
    const run = await RunDir.create(tmpDir(), { config: {}, now: () => 0 });
    run.appendMetrics(
      1,
      { a: Number.NaN, b: Number.POSITIVE_INFINITY, c: -Infinity },
      { split: 'train' },
    );
    const text = readFileSync(run.metricsPath, 'utf8');
    expect(text).toBe(
      '{"step":1,"split":"train","time":0,"a":"NaN","b":"Infinity","c":"-Infinity"}\n',
    );
    const [row] = parseMetrics(text);
    expect(row!.values).toEqual({ a: Number.NaN, b: Number.POSITIVE_INFINITY, c: -Infinity });
  });

  it('refuses metric names that collide with step, split or time', async () => {
    const run = await RunDir.create(tmpDir(), { config: {} });
    expect(() => run.appendMetrics(1, { time: 3 }, { split: 'train' })).toThrow(
      "metric 'time' collides",
    );
    expect(() => run.appendMetrics(-1, { loss: 3 }, { split: 'train' })).toThrow(
      'step must be a non-negative integer',
    );
  });

  it('truncateAfter keeps lines up to the step verbatim and drops a crash-cut last line', async () => {
    const run = await RunDir.create(tmpDir(), { config: {}, now: () => 0 });
    for (const step of [1, 2, 2, 3, 4]) run.appendMetrics(step, { loss: step }, { split: 'train' });
    writeFileSync(run.metricsPath, readFileSync(run.metricsPath, 'utf8') + '{"step":5,"spl', {
      flag: 'w',
    });
    await run.truncateAfter(2);
    expect(readFileSync(run.metricsPath, 'utf8')).toBe(
      [1, 2, 2].map((s) => `{"step":${s},"split":"train","time":0,"loss":${s}}\n`).join(''),
    );
  });

  it('a bad line in the middle is an error naming the file and line', async () => {
    const run = await RunDir.create(tmpDir(), { config: {} });
    writeFileSync(
      run.metricsPath,
      '{"step":1,"split":"train","loss":1}\nnot json\n{"step":2,"split":"train"}\n',
    );
    const e = await rejects(run.truncateAfter(1));
    expect(hasCode(e, 'BAD_DATA')).toBe(true);
    expect(e.message).toBe(`${run.metricsPath}:2: not a JSON object`);
  });

  it('log prefixes every line with a timestamp', async () => {
    const run = await RunDir.create(tmpDir(), {
      config: {},
      now: () => Date.UTC(2024, 0, 2, 3, 4, 5),
    });
    run.log('hello\nworld');
    expect(readFileSync(run.logPath, 'utf8')).toBe(
      '2024-01-02T03:04:05.000Z run started\n' +
        '2024-01-02T03:04:05.000Z hello\n' +
        '2024-01-02T03:04:05.000Z world\n',
    );
  });
});

describe('RunDir config', () => {
  it('a config JSON cannot hold is refused before anything is created', async () => {
    const dir = join(tmpDir(), 'run');
    const e = await rejects(RunDir.create(dir, { config: { n: 1n } }));
    expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
    expect(e.message).toContain('cannot be written as JSON');
    expect(existsSync(dir)).toBe(false);
  });
});
