import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunDir } from '../../src/train/index.js';
import { fakeClock, tmpDir } from './helpers.js';

const T0 = 1_796_000_000_000;

async function liveRun(options: { liveReport?: false } = {}) {
  const clock = fakeClock(T0);
  const run = await RunDir.create(tmpDir(), { config: { lr: 1 }, now: clock.now, ...options });
  const report = () => readFileSync(join(run.dir, 'report.html'), 'utf8');
  const records = () => /(\d+) records/.exec(report())?.[1];
  return { run, clock, report, records };
}

describe('the live report.html of a run directory', () => {
  it('is rewritten at every eval, and after train steps at most every 30 s', async () => {
    const { run, clock, report, records } = await liveRun();
    run.appendMetrics(0, { loss: 5 }, { split: 'eval' });
    expect(records()).toBe('1');
    expect(report()).toContain('<body data-live="1" data-written="1796000000000"');
    for (let s = 1; s <= 5; s++) {
      clock.set(T0 + s * 5000);
      run.appendMetrics(s, { loss: 5 - s / 10 }, { split: 'train' });
    }
    expect(records()).toBe('1'); // 25 s of train steps: not yet
    clock.set(T0 + 31_000);
    run.appendMetrics(6, { loss: 4 }, { split: 'train' });
    expect(records()).toBe('7');
    clock.set(T0 + 32_000);
    run.appendMetrics(6, { loss: 4.2 }, { split: 'eval' });
    expect(records()).toBe('8');
    expect(report()).toContain('data-written="1796000032000"');
  });

  it('liveReport: false leaves report.html to the end of the run', async () => {
    const { run } = await liveRun({ liveReport: false });
    run.appendMetrics(0, { loss: 5 }, { split: 'eval' });
    expect(existsSync(join(run.dir, 'report.html'))).toBe(false);
  });

  it('a rewrite that fails is logged once and the run goes on', async () => {
    const { run, clock } = await liveRun();
    mkdirSync(join(run.dir, 'report.html', 'in-the-way'), { recursive: true });
    run.appendMetrics(0, { loss: 5 }, { split: 'eval' });
    clock.set(T0 + 60_000);
    run.appendMetrics(0, { loss: 5 }, { split: 'eval' });
    const log = readFileSync(run.logPath, 'utf8');
    expect(log.match(/report\.html could not be rewritten during the run/g)).toHaveLength(1);
    expect(readFileSync(run.metricsPath, 'utf8').split('\n')).toHaveLength(3);
  });
});
