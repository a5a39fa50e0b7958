import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { RunDir } from '../../src/train/index.js';
import { fakeClock, tmpDir } from '../train/helpers.js';

afterEach(() => vi.restoreAllMocks());

/** `main(args)` in this process, with what it wrote to stdout and stderr. */
async function troupe(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((c) => out.push(String(c)) > 0);
  vi.spyOn(process.stderr, 'write').mockImplementation((c) => err.push(String(c)) > 0);
  const code = await main(args);
  vi.restoreAllMocks();
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** A run directory named `name` under `parent` with a few steps of loss. */
async function run(parent: string, name: string, losses: number[]): Promise<string> {
  const clock = fakeClock(1_796_000_000_000);
  const r = await RunDir.create(join(parent, name), { config: { name }, now: clock.now });
  losses.forEach((loss, i) => {
    clock.set(1_796_000_000_000 + 1000 * i);
    r.appendMetrics(i + 1, { loss }, { split: 'train' });
  });
  r.appendMetrics(losses.length, { loss: losses.at(-1)! + 0.1 }, { split: 'eval' });
  return r.dir;
}

describe('troupe report', () => {
  it('overlays several runs in one report, written where --output says', async () => {
    const parent = tmpDir();
    const a = await run(parent, 'a', [3, 2, 1.5]);
    const b = await run(parent, 'b', [4, 2.5, 1]);
    const out = join(parent, 'both.html');
    const r = await troupe('report', a, b, '--output', out);
    expect(r).toMatchObject({ code: 0, stderr: `wrote ${out} (2 runs)\n` });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<title>Troupe runs: a, b</title>');
    for (const key of ['a train', 'a eval', 'b train', 'b eval'])
      expect(html).toContain(`${key}</span>`);
    expect(html).toContain('<body data-live="0">');
  });

  it('one run: its report.html written anew, final', async () => {
    const dir = await run(tmpDir(), 'solo', [2, 1]);
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('data-live="1"');
    expect(await troupe('report', dir)).toMatchObject({
      code: 0,
      stderr: `wrote ${join(dir, 'report.html')}\n`,
    });
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('data-live="0"');
  });

  it('runs of the same name are told apart by their paths', async () => {
    const parent = tmpDir();
    const a = await run(join(parent, 'x'), 'grpo', [1, 2]);
    const b = await run(join(parent, 'y'), 'grpo', [2, 1]);
    const out = join(parent, 'r.html');
    expect((await troupe('report', a, b, '-o', out)).code).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/x\/grpo train<\/span>/);
    expect(html).toMatch(/y\/grpo train<\/span>/);
  });

  it('refuses what is not a run directory, and no directory at all, saying so', async () => {
    const empty = tmpDir();
    expect(await troupe('report', join(empty, 'nope'))).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('nope: no such run directory'),
    });
    expect(await troupe('report', empty)).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('has no metrics.jsonl: not a Troupe run directory'),
    });
    expect(await troupe('report')).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('give at least one run directory'),
    });
    const help = await troupe('report', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: troupe report [--output FILE] [--title TEXT] RUN_DIR…');
  });
});
