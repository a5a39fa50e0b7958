import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeHtml } from '../train/chart.js';
import { REPORT_CSS } from '../train/report-assets.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { ScalingAnalysis } from './analyze.js';
import { computeOptimal, predictLoss } from './chinchilla.js';
import { logSpace, PALETTE, type PlotSeries, renderPlot } from './plot.js';
import type { SweepRow } from './table.js';

/*
 * The sweep's report: report.html (the fitted constants with their intervals, the allocation per
 * budget, the extrapolation, every job, and the charts inline) and each chart as an .svg file,
 * beside results.csv for plotting elsewhere. Static: no script, no external asset.
 */

/** 3 significant digits; counts as 28.3k, 1.9M, 3e12. */
export function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9 || (a > 0 && a < 1e-3)) return v.toExponential(digits - 1).replace('e+', 'e');
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(digits))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(digits))}k`;
  return String(Number(v.toPrecision(digits)));
}

type NOf = (r: SweepRow) => number;

function charts(
  rows: readonly SweepRow[],
  an: ScalingAnalysis,
): Record<string, (standalone: boolean) => string> {
  const nOf: NOf = (r) => (an.parameters === 'total' ? r.params : r.nonEmbeddingParams);
  const law = an.approach3.law;
  const co = computeOptimal(law);
  const models = [...new Set(rows.map((r) => r.model))].sort(
    (a, b) => nOf(rows.find((r) => r.model === a)!) - nOf(rows.find((r) => r.model === b)!),
  );
  const cs = rows.map((r) => r.flops);
  const cRange = logSpace(Math.min(...cs) / 1.5, Math.max(...cs) * 1.5);
  const nName = an.parameters === 'total' ? 'N (parameters)' : 'N (non-embedding parameters)';
  const out: Record<string, (standalone: boolean) => string> = {};
  out['loss-vs-compute'] = (standalone) =>
    renderPlot(
      [
        ...models.map((m, i) => ({
          label: m,
          color: PALETTE[i % PALETTE.length],
          mode: 'markers' as const,
          points: rows.filter((r) => r.model === m).map((r) => ({ x: r.flops, y: r.loss })),
        })),
        {
          label: 'approach 3 frontier',
          color: '#111827',
          mode: 'line',
          points: cRange.map((c) => ({ x: c, y: co.frontier(c) })),
        },
        ...(an.extrapolation
          ? [
              {
                label: 'frontier, largest C held out',
                color: '#6b7280',
                mode: 'line' as const,
                dashed: true,
                points: cRange.map((c) => ({
                  x: c,
                  y: computeOptimal(an.extrapolation!.law).frontier(c),
                })),
              },
            ]
          : []),
      ],
      {
        title: 'Final eval loss against compute C = 6ND',
        xLabel: 'C (FLOPs)',
        yLabel: 'eval loss (nats/token)',
        logX: true,
        standalone,
      },
    );
  if (an.approach2) {
    const a2 = an.approach2;
    out['isoflop'] = (standalone) => {
      const series: PlotSeries[] = [];
      an.budgets.forEach((c, i) => {
        const color = PALETTE[i % PALETTE.length];
        const at = rows.filter((r) => r.budget === c);
        series.push({
          label: `C ${fmt(c)}`,
          color,
          mode: 'markers',
          points: at.map((r) => ({ x: nOf(r), y: r.loss })),
        });
        const k = a2.curves.find((x) => x.c === c);
        const ns = logSpace(Math.min(...at.map(nOf)), Math.max(...at.map(nOf)), 40);
        if (k && k.nOpt !== undefined) {
          const p = k.parabola;
          const near = ns.filter((n) => Math.abs(Math.log(n / k.nOpt!)) < 1.6);
          series.push({
            label: `parabola, N_opt ${fmt(k.nOpt)}`,
            color,
            mode: 'line',
            points: near.map((n) => ({
              x: n,
              y: p.p0 + p.p1 * Math.log(n) + p.p2 * Math.log(n) ** 2,
            })),
          });
        }
        series.push({
          label: 'approach 3 law',
          color,
          mode: 'line',
          dashed: true,
          points: ns.map((n) => ({ x: n, y: predictLoss(law, n, c / (6 * n)) })),
        });
      });
      return renderPlot(series, {
        title: 'IsoFLOP curves: loss against N at fixed C',
        xLabel: nName,
        yLabel: 'eval loss',
        logX: true,
        standalone,
      });
    };
  }
  out['n-opt'] = (standalone) => {
    const series: PlotSeries[] = [
      {
        label: `approach 3: a = ${fmt(an.approach3.a)}`,
        color: '#111827',
        mode: 'line',
        points: cRange.map((c) => ({ x: c, y: co.nOpt(c) })),
      },
    ];
    const a2 = an.approach2;
    if (a2?.nOpt) {
      const p = a2.nOpt;
      series.push(
        {
          label: 'approach 2 vertices',
          color: PALETTE[1],
          mode: 'markers',
          points: a2.curves.filter((k) => k.nOpt).map((k) => ({ x: k.c, y: k.nOpt! })),
        },
        {
          label: `approach 2: a = ${fmt(p.exponent)}`,
          color: PALETTE[1],
          mode: 'line',
          dashed: true,
          points: cRange.map((c) => ({ x: c, y: p.k * c ** p.exponent })),
        },
      );
    }
    return renderPlot(series, {
      title: 'Compute-optimal model size N_opt(C)',
      xLabel: 'C (FLOPs)',
      yLabel: nName,
      logX: true,
      logY: true,
      standalone,
    });
  };
  out['tokens-per-parameter'] = (standalone) => {
    const series: PlotSeries[] = [
      {
        label: 'approach 3',
        color: '#111827',
        mode: 'line',
        points: cRange.map((c) => ({ x: c, y: co.dOpt(c) / co.nOpt(c) })),
      },
    ];
    const a2 = an.approach2;
    if (a2)
      series.push({
        label: 'approach 2 vertices',
        color: PALETTE[1],
        mode: 'markers',
        points: a2.curves.filter((k) => k.nOpt).map((k) => ({ x: k.c, y: k.dOpt! / k.nOpt! })),
      });
    series.push({
      label: 'Chinchilla ≈ 20',
      color: '#9ca3af',
      mode: 'line',
      dashed: true,
      points: cRange.map((c) => ({ x: c, y: 20 })),
    });
    return renderPlot(series, {
      title: 'Tokens per parameter at the optimum, D_opt / N_opt',
      xLabel: 'C (FLOPs)',
      yLabel: 'D_opt / N_opt',
      logX: true,
      logY: true,
      standalone,
    });
  };
  const ex = an.extrapolation;
  if (ex) {
    out['extrapolation'] = (standalone) =>
      renderPlot(
        [
          {
            label: 'observed',
            color: '#111827',
            mode: 'markers',
            points: ex.jobs.map((j) => ({ x: j.n, y: j.loss })),
          },
          {
            label: 'predicted (held out)',
            color: PALETTE[2],
            mode: 'markers',
            hollow: true,
            points: ex.jobs.map((j) => ({ x: j.n, y: j.predicted })),
          },
        ],
        {
          title: `Held-out budget C ${fmt(ex.heldOut)}: fit without it, then predict`,
          xLabel: nName,
          yLabel: 'eval loss',
          logX: true,
          standalone,
        },
      );
  }
  for (const [key, label] of [
    ['N', nName],
    ['D', 'D (tokens)'],
  ] as const) {
    const k = an.kaplan[key];
    if (!k) continue;
    const xs = k.points.map((p) => p.x);
    out[`kaplan-${key}`] = (standalone) =>
      renderPlot(
        [
          {
            label: 'jobs',
            color: '#9ca3af',
            mode: 'markers',
            hollow: true,
            points: rows.map((r) => ({ x: key === 'N' ? nOf(r) : r.tokens, y: r.loss })),
          },
          {
            label: 'frontier',
            color: PALETTE[0],
            mode: 'markers',
            points: k.points.map((p) => ({ x: p.x, y: p.loss })),
          },
          {
            label: `(X_c/X)^α, α = ${fmt(k.alpha)}`,
            color: PALETTE[0],
            mode: 'line',
            points: logSpace(Math.min(...xs), Math.max(...xs)).map((x) => ({
              x,
              y: (k.xc / x) ** k.alpha,
            })),
          },
        ],
        {
          title: `Kaplan-style L(${key}) on the sweep's frontier`,
          xLabel: label,
          yLabel: 'eval loss',
          logX: true,
          logY: true,
          standalone,
        },
      );
  }
  return out;
}

/** `v [lo, hi]` with the bootstrap interval of `key`, when there is one. */
function withCi(an: ScalingAnalysis, key: string, v: number | undefined): string {
  const ci = an.intervals?.intervals[key];
  return `${fmt(v)}${ci ? ` [${fmt(ci[0])}, ${fmt(ci[1])}]` : ''}`;
}

function table(head: readonly string[], body: readonly (readonly string[])[]): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = body
    .map(
      (r) =>
        `<tr>${r.map((c, i) => `<td${i > 0 ? ' class="num"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`,
    )
    .join('');
  return `<table><thead><tr>${th}</tr></thead><tbody>${tr}</tbody></table>`;
}

/** The report page and its charts. */
export function renderScalingReport(
  rows: readonly SweepRow[],
  an: ScalingAnalysis,
  o: { readonly title: string },
): { html: string; svgs: Record<string, string> } {
  const made = charts(rows, an);
  const svgs = Object.fromEntries(Object.entries(made).map(([k, draw]) => [k, draw(true)]));
  const l = an.approach3.law;
  const level = an.intervals
    ? `${Math.round(an.intervals.confidence * 100)} % bootstrap intervals over ${an.intervals.resamples} resamples (stratified by budget, seed ${an.intervals.seed})`
    : 'no bootstrap';
  const constants = table(
    ['quantity', 'value [interval]', 'Chinchilla (Hoffmann et al.)'],
    [
      ['E', withCi(an, 'E', l.E), '1.69'],
      ['A', withCi(an, 'A', l.A), '406.4'],
      ['B', withCi(an, 'B', l.B), '410.7'],
      ['α', withCi(an, 'alpha', l.alpha), '0.34'],
      ['β', withCi(an, 'beta', l.beta), '0.28'],
      ['a = β/(α+β) (approach 3)', withCi(an, 'a', an.approach3.a), '0.46'],
      ['b = α/(α+β) (approach 3)', withCi(an, 'b', an.approach3.b), '0.54'],
      ['a (approach 2)', withCi(an, 'approach2.a', an.approach2?.nOpt?.exponent), '0.49'],
      [
        `approach 3 with ${an.approach3Other.parameters} N: α, β, a`,
        `${fmt(an.approach3Other.law.alpha)}, ${fmt(an.approach3Other.law.beta)}, ${fmt(an.approach3Other.a)}`,
        '',
      ],
      [
        'Kaplan α_N (frontier)',
        withCi(an, 'kaplan.N.alpha', an.kaplan.N?.alpha),
        '0.076 (Kaplan et al.)',
      ],
      ['Kaplan α_D (frontier)', withCi(an, 'kaplan.D.alpha', an.kaplan.D?.alpha), '0.095'],
      ['Kaplan α_C (frontier)', withCi(an, 'kaplan.C.alpha', an.kaplan.C?.alpha), '0.050'],
    ],
  );
  const alloc = table(
    [
      'C (FLOPs)',
      'N_opt (approach 3)',
      'D_opt',
      'D_opt / N_opt',
      'frontier loss',
      'N_opt (approach 2 vertex)',
    ],
    an.optimal.map((x) => [
      fmt(x.c),
      fmt(x.nOpt),
      fmt(x.dOpt),
      fmt(x.tokensPerParam),
      fmt(x.loss),
      fmt(x.approach2NOpt),
    ]),
  );
  const ex = an.extrapolation;
  const exText = ex
    ? `<p>Fitted on the ${ex.fittedOn} jobs below C ${fmt(ex.heldOut)}, approach 3 predicts the ${ex.jobs.length} held-out jobs' final loss with a mean absolute relative error of ${fmt(100 * ex.meanAbsRelError)} % (max ${fmt(100 * ex.maxAbsRelError)} %); their best job ${escapeHtml(ex.best.id)}: observed ${fmt(ex.best.loss, 4)}, predicted ${fmt(ex.best.predicted, 4)}.${ex.approach2 ? ` Approach 2 without that budget puts N_opt there at ${fmt(ex.approach2.predictedNOpt)}; its own IsoFLOP vertex is ${fmt(ex.approach2.observedNOpt)}.` : ''}</p>` +
      table(
        ['job', 'N', 'D', 'observed', 'predicted', 'error'],
        ex.jobs.map((j) => [
          j.id,
          fmt(j.n),
          fmt(j.d),
          fmt(j.loss, 4),
          fmt(j.predicted, 4),
          `${fmt(100 * j.relError)} %`,
        ]),
      )
    : '<p>Needs at least 2 budgets and 5 jobs below the largest.</p>';
  const bias = an.approach2Bias
    ? `<p>Approach 2's bias at this design: on noiseless losses from the approach-3 law at these very (N, D), approach 2 gives a = ${fmt(an.approach2Bias.approach2A)} where the law's own a is ${fmt(an.approach2Bias.lawA)}.</p>`
    : '';
  const jobs = table(
    ['job', 'N', 'N non-emb.', 'D', 'C', 'steps', 'epochs', 'lr', 'eval loss', 'seconds'],
    rows.map((r) => [
      r.id,
      fmt(r.params),
      fmt(r.nonEmbeddingParams),
      fmt(r.tokens),
      fmt(r.flops),
      String(r.steps),
      fmt(r.epochs),
      fmt(r.lr),
      fmt(r.loss, 4),
      fmt(r.seconds),
    ]),
  );
  const fig = (k: string) => (made[k] ? `<figure>${made[k](false)}</figure>` : '');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(o.title)}</title><style>${REPORT_CSS}</style></head>
<body data-live="0"><h1>${escapeHtml(o.title)}</h1>
<p class="summary">${rows.length} jobs over ${an.budgets.length} ${an.design === 'flops' ? 'compute' : 'token'} budgets; N = ${an.parameters === 'total' ? 'every parameter' : 'non-embedding parameters'}; C = 6ND. L(N, D) = E + A/N^α + B/D^β fitted by Huber (δ ${fmt(an.delta)}) on log loss, L-BFGS from a grid of starts; ${escapeHtml(level)}.</p>
<h2>Fitted constants</h2>${constants}
<h2>Compute-optimal allocation</h2>${alloc}${bias}
<div class="charts">${fig('loss-vs-compute')}${fig('isoflop')}${fig('n-opt')}${fig('tokens-per-parameter')}</div>
<h2>Extrapolation: the largest budget held out</h2>${exText}
<div class="charts">${fig('extrapolation')}${fig('kaplan-N')}${fig('kaplan-D')}</div>
<h2>Jobs</h2>${jobs}
</body></html>
`;
  return { html, svgs };
}

/** Write report.html, fits.json and svg/<chart>.svg into the sweep's directory. */
export async function writeScalingReport(
  dir: string,
  rows: readonly SweepRow[],
  an: ScalingAnalysis,
  title = 'Scaling-law sweep',
): Promise<string> {
  const { html, svgs } = renderScalingReport(rows, an, { title });
  await mkdir(join(dir, 'svg'), { recursive: true });
  await writeFileAtomic(join(dir, 'fits.json'), `${JSON.stringify(an, null, 2)}\n`);
  for (const [name, svg] of Object.entries(svgs))
    await writeFileAtomic(join(dir, 'svg', `${name}.svg`), svg);
  const file = join(dir, 'report.html');
  await writeFileAtomic(file, html);
  return file;
}
