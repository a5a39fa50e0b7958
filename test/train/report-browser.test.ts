import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRuns } from '../../src/train/index.js';
import { countColor, decodePng } from '../helpers/png.js';

/**
 * report.html as a person sees it: rendered by headless Chromium (Debian's, driven by
 * playwright-core), screenshotted, and the screenshot's pixels checked for the series' colours.
 * Skipped with the reason where Chromium is absent; under TROUPE_REQUIRE_CHROMIUM=1 (set by
 * .ci/run where it installed it) that is a failure. TROUPE_SCREENSHOTS=DIR keeps the PNGs.
 */
const CHROMIUM = process.env.TROUPE_CHROMIUM ?? '/usr/bin/chromium';
const missing = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set TROUPE_CHROMIUM)`;
if (missing && process.env.TROUPE_REQUIRE_CHROMIUM === '1') {
  throw new Error(`TROUPE_REQUIRE_CHROMIUM=1, but ${missing}`);
}

// The flags that work on this project's machines (no network beyond the package registries).
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const TRAIN = '#2563eb';
const EVAL = '#ea580c';

const row = (step: number, split: string, time: number, values: Record<string, number>) =>
  `${JSON.stringify({ step, split, time, ...values })}\n`;

/** An RL-shaped run: 120 iterations, evals every 30, a constant, a decaying lr, timings. */
function rlMetrics(seed: number): string {
  let text = row(0, 'eval', 1000, { reward: 0.3, response_length: 3 });
  for (let s = 1; s <= 120; s++) {
    const noise = Math.sin(s * 1.7 + seed) * 0.05;
    text += row(s, 'train', 1000 + 2 * s, {
      'reward/mean': 0.3 + (0.5 * s) / 120 + noise,
      kl: 0.001 * s,
      'actor/loss': -0.01 + noise / 5,
      'actor/entropy': 2 - s / 100,
      'critic/loss': 1 / s,
      kl_coef: 0.05,
      lr: 1e-3 * 0.97 ** s,
      'timing/step_s': 2 + noise,
    });
    if (s % 30 === 0)
      text += row(s, 'eval', 1000 + 2 * s + 1, { reward: 0.3 + s / 200, response_length: 3 });
  }
  return text;
}

let browser: Browser;
let dir = '';
const shots = process.env.TROUPE_SCREENSHOTS;

async function open(html: string, name: string): Promise<{ page: Page; errors: string[] }> {
  const file = join(dir, `${name}.html`);
  writeFileSync(file, html);
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(file).href);
  return { page, errors };
}

async function screenshot(page: Page, name: string, selector?: string): Promise<Buffer> {
  const png = selector
    ? await page.locator(selector).first().screenshot()
    : await page.screenshot({ fullPage: true });
  if (shots) {
    mkdirSync(shots, { recursive: true });
    writeFileSync(join(shots, `${name}.png`), png);
  }
  return png;
}

/*
 * The callbacks given to page.evaluate run in the page, where these exist; this project's types
 * have no DOM, so the little of it they use is declared here (module-local).
 */
interface PageElement {
  readonly textContent: string | null;
  readonly classList: { contains(c: string): boolean };
  getBoundingClientRect(): { width: number; height: number };
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
  getTotalLength(): number;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
  getElementById(id: string): PageElement | null;
  readonly body: { readonly dataset: Record<string, string | undefined> };
};
declare function getComputedStyle(e: PageElement): {
  borderTopColor: string;
  borderTopStyle: string;
};

/** What the page shows, read from the DOM as laid out (only what is displayed counts). */
function layout(page: Page) {
  return page.evaluate(() => {
    const shown = (e: PageElement) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0;
    };
    return {
      groups: [...document.querySelectorAll('details.group > summary .gname')].map(
        (e) => e.textContent,
      ),
      charts: [...document.querySelectorAll('figure')].map((f) => {
        const svg = [...f.querySelectorAll('svg.chart')].find(shown);
        const paths = svg ? [...svg.querySelectorAll('path')].filter(shown) : [];
        return {
          metric: f.getAttribute('data-metric'),
          x: svg?.getAttribute('data-x') ?? null,
          y: svg?.getAttribute('data-y') ?? null,
          width: svg ? Math.round(svg.getBoundingClientRect().width) : 0,
          // Drawn length of the visible lines, in px.
          drawn: Math.round(paths.reduce((a, p) => a + p.getTotalLength(), 0)),
          smooth: paths.filter((p) => p.classList.contains('smooth')).length,
          keys: [...f.querySelectorAll('.key')].filter(shown).map((k) => ({
            text: k.textContent,
            swatch: getComputedStyle(k.querySelector('.swatch')!).borderTopColor,
            dash: getComputedStyle(k.querySelector('.swatch')!).borderTopStyle,
          })),
        };
      }),
      constants: document.querySelector('.constants')?.textContent ?? null,
      status: document.getElementById('status')?.textContent ?? '',
    };
  });
}

beforeAll(async () => {
  if (missing) return;
  dir = mkdtempSync(join(tmpdir(), 'troupe-report-browser-'));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(missing !== null)(
  `report.html in headless Chromium${missing ? ` (skipped: ${missing})` : ''}`,
  () => {
    it('draws every chart with its legend, grouped by prefix; the screenshot shows the series colours', async () => {
      const html = renderRuns([{ name: 'grpo', metrics: rlMetrics(0), config: 'lr: 0.001\n' }], {
        title: 'Troupe run: grpo',
      });
      const { page, errors } = await open(html, 'single');
      const l = await layout(page);
      expect(l.groups).toEqual(['main', 'reward/', 'actor/', 'critic/', 'timing/']);
      expect(l.charts.map((c) => c.metric)).toEqual([
        'reward',
        'kl',
        'lr',
        'reward/mean',
        'actor/loss',
        'actor/entropy',
        'critic/loss',
        'timing/step_s',
      ]);
      for (const c of l.charts) {
        expect(c.x, c.metric!).toBe('step');
        expect(c.width, c.metric!).toBeGreaterThan(400);
        expect(c.drawn, c.metric!).toBeGreaterThan(200);
        expect(c.keys.length, c.metric!).toBeGreaterThan(0);
      }
      const byName = new Map(l.charts.map((c) => [c.metric, c]));
      expect(byName.get('reward')!.keys).toEqual([
        { text: 'eval', swatch: 'rgb(234, 88, 12)', dash: 'solid' },
      ]);
      expect(byName.get('reward/mean')!.keys).toEqual([
        { text: 'train', swatch: 'rgb(37, 99, 235)', dash: 'solid' },
      ]);
      expect(byName.get('reward/mean')!.smooth).toBe(1);
      // lr decays 35× and the critic's loss 120×: log axes; the reward stays linear.
      expect([byName.get('lr')!.y, byName.get('critic/loss')!.y, byName.get('reward')!.y]).toEqual([
        'log',
        'log',
        'linear',
      ]);
      // Constant throughout: listed, not drawn.
      expect(l.constants).toBe('Constant (not drawn): response_length = 3 kl_coef = 0.05');
      expect(errors).toEqual([]);

      const page1 = decodePng(await screenshot(page, 'report-single'));
      expect(page1.width).toBe(1300);
      const fig = decodePng(
        await screenshot(page, 'report-figure', 'figure[data-metric="reward/mean"]'),
      );
      // The train line (and its faint raw copy, lighter) and the legend's swatch.
      expect(countColor(fig, TRAIN)).toBeGreaterThan(300);
      expect(countColor(fig, EVAL)).toBe(0);
      const evalFig = decodePng(
        await screenshot(page, 'report-eval', 'figure[data-metric="reward"]'),
      );
      expect(countColor(evalFig, EVAL)).toBeGreaterThan(100);
      await page.close();
    });

    it('the wall-time axis and smoothing switch by CSS; the choice survives a reload', async () => {
      const html = renderRuns([{ name: 'grpo', metrics: rlMetrics(0) }], { title: 't' });
      const { page, errors } = await open(html, 'toggle');
      await page.click('#x-time');
      let l = await layout(page);
      expect(new Set(l.charts.map((c) => c.x))).toEqual(new Set(['time']));
      for (const c of l.charts) expect(c.drawn, c.metric!).toBeGreaterThan(200);
      expect(page.url()).toMatch(/#x=time&smooth=1$/);
      await page.click('#smooth');
      l = await layout(page);
      expect(l.charts.every((c) => c.smooth === 0)).toBe(true);
      await page.reload();
      l = await layout(page);
      expect(new Set(l.charts.map((c) => c.x))).toEqual(new Set(['time']));
      expect(l.charts.every((c) => c.smooth === 0)).toBe(true);
      await screenshot(page, 'report-wall-time');
      expect(errors).toEqual([]);
      await page.close();
    });

    it('several runs overlaid: a colour per run, eval dashed, all in each legend', async () => {
      const html = renderRuns(
        [
          { name: 'beta-0.1', metrics: rlMetrics(0) },
          { name: 'beta-0.4', metrics: rlMetrics(2) },
        ],
        { title: 'Troupe runs: beta-0.1, beta-0.4' },
      );
      const { page, errors } = await open(html, 'overlay');
      const l = await layout(page);
      const reward = l.charts.find((c) => c.metric === 'reward')!;
      expect(reward.keys).toEqual([
        { text: 'beta-0.1 eval', swatch: 'rgb(37, 99, 235)', dash: 'dashed' },
        { text: 'beta-0.4 eval', swatch: 'rgb(220, 38, 38)', dash: 'dashed' },
      ]);
      const mean = l.charts.find((c) => c.metric === 'reward/mean')!;
      expect(mean.keys.map((k) => k.text)).toEqual(['beta-0.1 train', 'beta-0.4 train']);
      expect(mean.smooth).toBe(2);
      const fig = decodePng(
        await screenshot(page, 'report-overlay', 'figure[data-metric="reward/mean"]'),
      );
      expect(countColor(fig, '#2563eb')).toBeGreaterThan(200);
      expect(countColor(fig, '#dc2626')).toBeGreaterThan(200);
      expect(errors).toEqual([]);
      await page.close();
    });

    it('a live report reloads itself until the final one replaces it; a stale one stops', async () => {
      const live = { reloadSeconds: 1, staleAfterSeconds: 600 };
      const first = renderRuns(
        [{ name: 'r', metrics: rlMetrics(0).split('\n').slice(0, 20).join('\n') }],
        {
          title: 't',
          live,
        },
      );
      const { page, errors } = await open(first, 'live');
      expect((await layout(page)).status).toContain('Live');
      const loads: number[] = [];
      page.on('load', () => loads.push(Date.now()));
      // The run goes on: the next write of the file is the final report.
      writeFileSync(
        join(dir, 'live.html'),
        renderRuns([{ name: 'r', metrics: rlMetrics(0) }], { title: 't' }),
      );
      await page.waitForEvent('load', { timeout: 5000 });
      const l = await layout(page);
      expect(l.status).toMatch(/^Written /);
      expect(await page.evaluate(() => document.body.dataset.live)).toBe('0');
      await page.waitForTimeout(1500);
      expect(loads).toHaveLength(1);
      await page.close();

      const stale = renderRuns([{ name: 'r', metrics: rlMetrics(0) }], {
        title: 't',
        live,
        writtenAt: Date.now() - 3600_000,
      });
      const s = await open(stale, 'stale');
      expect((await layout(s.page)).status).toContain(
        'Not updated for 60 min: the run may have stopped',
      );
      let reloaded = false;
      s.page.on('load', () => {
        reloaded = true;
      });
      await s.page.waitForTimeout(1500);
      expect(reloaded).toBe(false);
      expect([...errors, ...s.errors]).toEqual([]);
      await s.page.close();
    });
  },
);
