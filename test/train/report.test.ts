import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatTick, logTicks, niceTicks, timeTicks } from '../../src/train/chart.js';
import { RunDir, renderReport, renderRuns, writeReport } from '../../src/train/index.js';
import { smooth } from '../../src/train/report-data.js';
import { tmpDir } from './helpers.js';

const line = (
  step: number,
  split: string,
  values: Record<string, number | string>,
  time = 1000 + step,
) => `${JSON.stringify({ step, split, time, ...values })}\n`;

const METRICS =
  line(1, 'train', { loss: 3, lr: 0.001 }) +
  line(2, 'train', { loss: 2.5, lr: 0.001 }) +
  line(2, 'eval', { loss: 2.8 }) +
  line(3, 'train', { loss: 'NaN', lr: 0.001 }) +
  line(4, 'train', { loss: 2.1, lr: 0.0005 }) +
  line(4, 'eval', { loss: 'Infinity' });

const count = (s: string, sub: string) => s.split(sub).length - 1;

/** Each <figure>'s HTML by its metric name. */
function figures(html: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of html.matchAll(/<figure data-metric="([^"]*)">([\s\S]*?)<\/figure>/g)) {
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The chart of a figure against the step, or against wall time. */
const chart = (fig: string, x: 'step' | 'time') =>
  new RegExp(`<div class="by-${x}">([\\s\\S]*?)</div>`).exec(fig)![1]!;

/** The text labels of a chart's ticks (y first, then x). */
const tickLabels = (svg: string) =>
  [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

describe('renderReport', () => {
  it('a chart per metric against step and wall time, train and eval in their colours, final values and config', () => {
    const html = renderReport(METRICS, { title: 'demo', config: { lr: 0.001, model: 'tiny' } });
    expect(html.startsWith('<!doctype html>')).toBe(true);
    const figs = figures(html);
    expect([...figs.keys()]).toEqual(['loss', 'lr']);
    expect(count(html, '<svg')).toBe(4);
    const loss = figs.get('loss')!;
    const lr = figs.get('lr')!;
    expect(chart(loss, 'step')).toContain('data-x="step"');
    expect(chart(loss, 'time')).toContain('data-x="time"');
    // loss has train (blue) and eval (orange) series; lr only train.
    expect(loss).toContain('stroke="#2563eb"');
    expect(loss).toContain('fill="#ea580c"');
    expect(loss).toMatch(/<span class="key">.*train<\/span>.*eval<\/span>/);
    expect(lr).not.toContain('#ea580c');
    expect(loss).toContain('2 NaN/Inf points skipped (train 1, eval 1)');
    expect(lr).not.toContain('skipped');
    // y tick labels in the spacing's decimals, on a linear axis (0.0005–0.001 spans 2×).
    expect(chart(lr, 'step')).toContain('data-y="linear"');
    expect(lr).toContain('>0.0005</text>');
    expect(lr).toContain('>0.0010</text>');
    expect(html).toContain(
      '<td>loss</td><td class="num">2.1</td><td class="num">4</td><td class="num">inf</td>',
    );
    expect(html).toContain('<pre>lr: 0.001\nmodel: tiny\n</pre>');
    expect(html).toContain('6 records · steps 1–4 · 3s wall time');
  });

  it('escapes user text, runs only its own script (by hash) and loads nothing from anywhere', () => {
    const evil = '<script>alert("x")</script>';
    const html = renderReport(line(1, 'train', { [evil]: 1 }), {
      title: `run <b>&`,
      config: { note: '</pre><img src="http://x/y.png">' },
    });
    expect(count(html, '<script')).toBe(1);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('<title>run &lt;b&gt;&amp;</title>');
    expect(html).not.toContain('<img');
    // The config's <img> is text now; no tag has a src or href.
    expect(html).not.toMatch(/<[a-z][^>]*\s(src|href)\s*=/i);
    expect(html).not.toMatch(/url\(/i);
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    const hash = createHash('sha256').update(script).digest('base64');
    expect(html).toContain(
      `content="default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${hash}'"`,
    );
  });

  it('a long run (200,000 rows) renders: no spread of its rows into Math.min/max', () => {
    const rows: string[] = [];
    for (let s = 1; s <= 200_000; s++) rows.push(line(s, 'train', { loss: 1 / s }));
    const html = renderReport(rows.join(''), { title: 'long' });
    expect(html).toContain('200000 records · steps 1–200000');
  });

  it('a metric with only NaN values still gets its (empty) chart', () => {
    const html = renderReport(line(1, 'train', { kl: 'NaN' }) + line(2, 'train', { kl: 'NaN' }), {
      title: 't',
    });
    expect(count(html, '<svg')).toBe(2);
    expect(count(html, 'no finite values')).toBe(2);
    expect(html).toContain('2 NaN/Inf points skipped (train 2)');
  });

  it('a constant series is listed, not drawn; a single point still draws', () => {
    const text =
      line(1, 'train', { loss: 3, kl_coef: 0.05 }) +
      line(2, 'train', { loss: 2, kl_coef: 0.05 }) +
      line(3, 'train', { loss: 1, kl_coef: 0.05 }) +
      line(3, 'eval', { acc: 0.5 });
    const html = renderReport(text, { title: 't' });
    expect([...figures(html).keys()]).toEqual(['loss', 'acc']);
    expect(html).toContain(
      '<p class="constants">Constant (not drawn): <span class="const">kl_coef = 0.05</span></p>',
    );
    expect(html).toContain('<span class="count">2 charts, 1 constant</span>');
    expect(figures(html).get('acc')).toContain('<circle');
    // Still in the final values.
    expect(html).toContain('<td>kl_coef</td><td class="num">0.05</td><td class="num">3</td>');
  });

  it('charts are grouped by prefix: the main group first, then as they appear, timing last', () => {
    const text = line(1, 'train', {
      'timing/step_s': 0.2,
      loss: 1,
      'actor/loss': 0.5,
      'critic/loss': 0.3,
      'reward/mean': 0.1,
      'actor/kl': 0.01,
    });
    const html = renderReport(
      text +
        line(2, 'train', {
          'timing/step_s': 0.3,
          loss: 2,
          'actor/loss': 1,
          'critic/loss': 1,
          'reward/mean': 1,
          'actor/kl': 1,
        }),
      { title: 't' },
    );
    const groups = [
      ...html.matchAll(/<details class="group" open data-group="([^"]*)">([\s\S]*?)<\/details>/g),
    ];
    expect(groups.map((g) => g[1])).toEqual(['', 'actor', 'critic', 'reward', 'timing']);
    expect(groups.map((g) => [...figures(g[2]!).keys()])).toEqual([
      ['loss'],
      ['actor/loss', 'actor/kl'],
      ['critic/loss'],
      ['reward/mean'],
      ['timing/step_s'],
    ]);
    expect(html).toContain('<span class="gname">actor/</span> <span class="count">2 charts</span>');
  });

  it('a log axis where positive values span decades, with decade ticks', () => {
    let text = '';
    for (let s = 1; s <= 5; s++) text += line(s, 'train', { lr: 10 ** -s, loss: 3 - s / 10 });
    const figs = figures(renderReport(text, { title: 't' }));
    const lr = chart(figs.get('lr')!, 'step');
    expect(lr).toContain('data-y="log"');
    expect(tickLabels(lr).slice(0, 5)).toEqual(['1e-5', '1e-4', '0.001', '0.01', '0.1']);
    expect(lr).toContain('step · log scale');
    expect(chart(figs.get('loss')!, 'step')).toContain('data-y="linear"');
  });

  it('the wall-time axis counts seconds from the run start, in round units', () => {
    let text = '';
    for (let s = 0; s <= 13; s++) text += line(s, 'train', { loss: 5 - s / 10 }, 5000 + 10 * s);
    const time = chart(figures(renderReport(text, { title: 't' })).get('loss')!, 'time');
    expect(tickLabels(time)).toEqual(expect.arrayContaining(['0s', '30s', '1m', '1m30s', '2m']));
    expect(time).toContain('>wall time</text>');
  });

  it('dense series get a smoothed line over the faint raw one; sparse ones are drawn as they are', () => {
    let text = '';
    for (let s = 1; s <= 50; s++) {
      text += line(s, 'train', { loss: 2 + Math.sin(s) });
      if (s % 25 === 0) text += line(s, 'eval', { loss: 2 });
    }
    const loss = chart(figures(renderReport(text, { title: 't' })).get('loss')!, 'step');
    const [train, evals] = loss.split('<g class="series"').slice(1) as [string, string];
    expect(train).toContain('<path class="raw"');
    expect(train).toContain('<path class="smooth"');
    expect(evals).toContain('<path class="line"');
    expect(evals).not.toContain('class="smooth"');
    const plain = renderReport(text, { title: 't', smoothing: 0 });
    expect(plain).not.toContain('class="smooth"');
    expect(plain).toContain('smoothed (EMA 0)');
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
    const html = renderReport(text, { title: 'long', smoothing: 0 });
    const d = /<path class="line" d="([^"]+)"/.exec(html)![1]!;
    expect(count(d, 'L')).toBeLessThan(2000);
    expect(html).toContain('>50</text>');
  });

  it('a live report says so and carries what its script needs to reload; a final one does not', () => {
    const live = renderReport(METRICS, {
      title: 't',
      live: { reloadSeconds: 15, staleAfterSeconds: 600 },
      writtenAt: Date.UTC(2026, 11, 2, 3, 4, 5),
    });
    expect(live).toContain(
      '<body data-live="1" data-written="1796180645000" data-reload-s="15" data-stale-s="600">',
    );
    expect(live).toContain(
      'reloads every 15 s until the run ends (last written 2026-12-02 03:04:05 UTC)',
    );
    const final = renderReport(METRICS, { title: 't', writtenAt: Date.UTC(2026, 11, 2, 3, 4, 5) });
    expect(final).toContain('<body data-live="0">');
    expect(final).toContain('Written 2026-12-02 03:04:05 UTC.');
  });
});

describe('renderRuns: several runs overlaid', () => {
  const a =
    line(1, 'train', { loss: 3 }) + line(2, 'train', { loss: 2 }) + line(2, 'eval', { loss: 2.5 });
  const b =
    line(1, 'train', { loss: 4 }) +
    line(2, 'train', { loss: 1 }) +
    line(2, 'eval', { loss: 1.5, acc: 0.7 });
  const html = renderRuns(
    [
      { name: 'lr-1e-3', metrics: a, config: 'lr: 0.001\n' },
      { name: 'lr-3e-3', metrics: b, config: 'lr: 0.003\n' },
    ],
    { title: 'compare' },
  );

  it('a colour per run, train solid and eval dashed, each named in the legend', () => {
    const loss = figures(html).get('loss')!;
    const keys = [
      ...loss.matchAll(
        /<span class="key"><span class="swatch( dashed)?" style="border-color:(#[0-9a-f]+)"><\/span>([^<]*)<\/span>/g,
      ),
    ];
    expect(keys.map((k) => [k[3], k[2], k[1] === ' dashed'])).toEqual([
      ['lr-1e-3 train', '#2563eb', false],
      ['lr-1e-3 eval', '#2563eb', true],
      ['lr-3e-3 train', '#dc2626', false],
      ['lr-3e-3 eval', '#dc2626', true],
    ]);
    expect(count(chart(loss, 'step'), 'stroke-dasharray')).toBe(2);
    // A metric only one run has is drawn for that run alone.
    expect(figures(html).get('acc')).toContain('lr-3e-3 eval');
    expect(figures(html).get('acc')).not.toContain('lr-1e-3');
  });

  it('a summary, final values and config per run', () => {
    expect(html).toContain(
      '<p class="summary"><b>lr-1e-3</b>: 3 records · steps 1–2 · 1s wall time</p>',
    );
    expect(html).toContain('<h3>lr-3e-3</h3>');
    expect(html).toContain('<details><summary>lr-3e-3</summary><pre>lr: 0.003\n</pre></details>');
  });
});

describe('writeReport', () => {
  it('writes report.html from a run directory, final, and ends its live rewrites', async () => {
    const run = await RunDir.create(tmpDir(), { config: { lr: 0.1 } });
    run.appendMetrics(1, { loss: 1 }, { split: 'eval' });
    expect(readFileSync(`${run.dir}/report.html`, 'utf8')).toContain('data-live="1"');
    const path = await writeReport(run);
    const html = readFileSync(path, 'utf8');
    expect(path).toBe(`${run.dir}/report.html`);
    expect(html).toContain('<pre>lr: 0.1\n</pre>');
    expect(html).toContain('data-live="0"');
    expect(count(html, '<svg')).toBe(2);
    run.appendMetrics(2, { loss: 0.5 }, { split: 'eval' });
    expect(readFileSync(path, 'utf8')).toBe(html);
  });
});

describe('smoothing', () => {
  it("is TensorBoard's debiased EMA; non-finite points pass through and do not enter it", () => {
    const pts = [1, 3, Number.NaN, 3].map((value, step) => ({ step, value }));
    const s = smooth(pts, 0.5).map((p) => p.value);
    // 0.5·1 / (1 − 0.5) = 1; (0.25 + 1.5) / 0.75 = 7/3; NaN; (0.875 + 1.5) / 0.875 = 19/7
    expect(s[0]).toBeCloseTo(1, 12);
    expect(s[1]).toBeCloseTo(7 / 3, 12);
    expect(s[2]).toBeNaN();
    expect(s[3]).toBeCloseTo(19 / 7, 12);
  });
});

describe('niceTicks / formatTick / logTicks / timeTicks', () => {
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

  it('a range of one ulp is a flat one (it used to loop for ever past 2^53 tick indices)', () => {
    const lo = 0.46211715726000957;
    const hi = 0.4621171572600096;
    expect(hi > lo).toBe(true);
    expect(niceTicks(lo, hi)).toEqual(niceTicks(lo, lo));
  });

  it('log ticks: decades, with 2 and 5 between them over at most two decades', () => {
    expect(logTicks(3e-5, 0.2)).toEqual([1e-5, 1e-4, 0.001, 0.01, 0.1, 1]);
    expect(logTicks(0.3, 8)).toEqual([0.1, 0.2, 0.5, 1, 2, 5, 10]);
    expect(logTicks(0.3, 20)).toEqual([0.1, 1, 10, 100]);
  });

  it('time ticks: round seconds, minutes and hours', () => {
    expect(timeTicks(130)).toEqual([0, 30, 60, 90, 120]);
    expect(timeTicks(7200)).toEqual([0, 1800, 3600, 5400, 7200]);
  });
});
