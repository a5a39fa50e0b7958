import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatTick, niceTicks } from '../../src/train/chart.js';
import { RunDir, renderReport, writeReport } from '../../src/train/index.js';
import { tmpDir } from './helpers.js';

const line = (step: number, split: string, values: Record<string, number | string>) =>
  `${JSON.stringify({ step, split, time: 1000 + step, ...values })}\n`;

const METRICS =
  line(1, 'train', { loss: 3, lr: 0.001 }) +
  line(2, 'train', { loss: 2.5, lr: 0.001 }) +
  line(2, 'eval', { loss: 2.8 }) +
  line(3, 'train', { loss: 'NaN', lr: 0.001 }) +
  line(4, 'train', { loss: 2.1, lr: 0.0005 }) +
  line(4, 'eval', { loss: 'Infinity' });

const count = (s: string, sub: string) => s.split(sub).length - 1;

describe('renderReport', () => {
  it('one chart per metric, train and eval in different colours, final values and config', () => {
    const html = renderReport(METRICS, { title: 'demo', config: { lr: 0.001, model: 'tiny' } });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(count(html, '<svg')).toBe(2);
    expect(count(html, '</svg>')).toBe(2);
    // loss has train (blue) and eval (orange) paths; lr only train.
    const [loss, lr] = html.split('<figure>').slice(1) as [string, string];
    expect(loss).toContain('stroke="#2563eb"');
    expect(loss).toContain('fill="#ea580c"');
    expect(lr).not.toContain('#ea580c');
    expect(loss).toContain('2 NaN/Inf points skipped (train 1, eval 1)');
    expect(lr).not.toContain('skipped');
    // y tick labels in the spacing's decimals.
    expect(lr).toContain('>0.0005</text>');
    expect(lr).toContain('>0.0010</text>');
    expect(html).toContain(
      '<td>loss</td><td class="num">2.1</td><td class="num">4</td><td class="num">inf</td>',
    );
    expect(html).toContain('<pre>lr: 0.001\nmodel: tiny\n</pre>');
    expect(html).toContain('6 records · steps 1–4 · 3s wall time');
  });

  it('escapes user text and loads nothing from anywhere', () => {
    const evil = '<script>alert("x")</script>';
    const html = renderReport(line(1, 'train', { [evil]: 1 }), {
      title: `run <b>&`,
      config: { note: '</pre><img src="http://x/y.png">' },
    });
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('<title>run &lt;b&gt;&amp;</title>');
    expect(html).not.toContain('<img');
    // The config's <img> is text now; no tag has a src or href.
    expect(html).not.toMatch(/<[a-z][^>]*\s(src|href)\s*=/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).toContain("default-src 'none'");
  });

  it('a metric with only NaN values still gets its (empty) chart', () => {
    const html = renderReport(line(1, 'train', { kl: 'NaN' }) + line(2, 'train', { kl: 'NaN' }), {
      title: 't',
    });
    expect(count(html, '<svg')).toBe(1);
    expect(html).toContain('no finite values');
    expect(html).toContain('2 NaN/Inf points skipped (train 2)');
  });

  it('a constant series and a single step still draw', () => {
    const html = renderReport(line(7, 'eval', { acc: 0.5 }), { title: 't' });
    expect(html).toContain('<circle');
    expect(html).not.toContain('NaN"');
  });

  it('no metrics: a page that says so', () => {
    const html = renderReport('', { title: 'empty' });
    expect(html).toContain('No metrics recorded yet.');
    expect(html).not.toContain('<svg');
  });

  it('a long run is decimated, keeping its spike', () => {
    let text = '';
    for (let s = 0; s < 20_000; s++)
      text += line(s, 'train', { loss: s === 12_345 ? 50 : 1 + 1 / (s + 1) });
    const html = renderReport(text, { title: 'long' });
    const d = /<path d="([^"]+)"/.exec(html)![1]!;
    expect(count(d, 'L')).toBeLessThan(2000);
    expect(html).toContain('>50</text>');
  });

  it('writeReport writes report.html from a run directory', async () => {
    const run = await RunDir.create(tmpDir(), { config: { lr: 0.1 } });
    run.appendMetrics(1, { loss: 1 }, { split: 'train' });
    const path = await writeReport(run);
    const html = readFileSync(path, 'utf8');
    expect(path).toBe(`${run.dir}/report.html`);
    expect(html).toContain('<pre>lr: 0.1\n</pre>');
    expect(count(html, '<svg')).toBe(1);
  });
});

describe('niceTicks / formatTick', () => {
  it.each([
    [0.0005, 0.0001, '0.0005'],
    [2.5, 0.5, '2.5'],
    [1500, 500, '1500'],
    [2.5e-7, 5e-8, '2.5e-7'],
    [3e6, 1e6, '3e+6'],
  ])('formatTick(%d, spacing %d) = %s', (v, step, s) => expect(formatTick(v, step)).toBe(s));

  it.each([
    [0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]],
    [2.1, 3, [2, 2.2, 2.4, 2.6, 2.8, 3]],
    [0.0005, 0.001, [0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001]],
    [5, 5, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]],
    [1e-7, 3e-7, [1e-7, 1.5e-7, 2e-7, 2.5e-7, 3e-7]],
    [-3, 17, [-5, 0, 5, 10, 15, 20]],
  ])('[%d, %d] → %j', (lo, hi, ticks) => {
    expect(niceTicks(lo, hi).ticks).toEqual(ticks);
  });
});
