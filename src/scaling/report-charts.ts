import type { ScalingAnalysis } from './analyze.js';
import { computeOptimal, predictLoss } from './chinchilla.js';
import { fmt, logSpace, PALETTE, type PlotSeries, renderPlot } from './plot.js';
import type { SweepRow } from './table.js';

/*
 * The sweep report's charts (report.ts), by name: loss-vs-compute, isoflop, n-opt,
 * tokens-per-parameter, extrapolation, kaplan-N and kaplan-D, each SVG text drawn inline in
 * report.html or standalone as svg/<name>.svg.
 */

type NOf = (r: SweepRow) => number;

/** Each chart of the report by name: `standalone` for its own .svg file. */
export function charts(
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
