import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeHtml } from '../train/chart.js';
import { REPORT_CSS } from '../train/report-assets.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { ScalingAnalysis } from './analyze.js';
import { fmt } from './plot.js';
import { charts } from './report-charts.js';
import type { SweepRow } from './table.js';

/*
 * The sweep's report: report.html (the fitted constants with their intervals, the allocation per
 * budget, the extrapolation, every job, and the charts inline) and each chart as an .svg file,
 * beside results.csv for plotting elsewhere. Static: no script, no external asset. The charts
 * are drawn in report-charts.ts.
 */

export { fmt };

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
