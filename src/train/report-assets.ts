import { createHash } from 'node:crypto';

/** What report.html carries inline besides its charts: its style and its one script. */

/**
 * The page's only script: keeps the axis and smoothing choices in the URL's fragment (so a
 * reload keeps them) and, on a live page, reloads it until the run ends or the page goes stale.
 */
export const REPORT_SCRIPT = `(() => {
  const b = document.body;
  const form = document.getElementById('controls');
  const saved = new URLSearchParams(location.hash.slice(1));
  for (const el of form.elements) {
    if (!saved.has(el.name)) continue;
    if (el.type === 'radio') el.checked = saved.get(el.name) === el.value;
    if (el.type === 'checkbox') el.checked = saved.get(el.name) === '1';
  }
  form.addEventListener('change', () => {
    const p = new URLSearchParams();
    for (const el of form.elements) {
      if (el.type === 'radio' && el.checked) p.set(el.name, el.value);
      if (el.type === 'checkbox') p.set(el.name, el.checked ? '1' : '0');
    }
    try { history.replaceState(null, '', '#' + p); } catch (e) { location.hash = String(p); }
  });
  if (b.dataset.live !== '1') return;
  const age = Date.now() - Number(b.dataset.written);
  const status = document.getElementById('status');
  if (age > Number(b.dataset.staleS) * 1000) {
    status.textContent = 'Not updated for ' + Math.round(age / 60000) + ' min: the run may have stopped. This page no longer reloads itself.';
    status.className = 'status stale';
    return;
  }
  setTimeout(() => location.reload(), Number(b.dataset.reloadS) * 1000);
})();`;
/** For the page's Content-Security-Policy: only this script may run. */
export const REPORT_SCRIPT_HASH = createHash('sha256').update(REPORT_SCRIPT).digest('base64');

/**
 * The page's style. The axis and smoothing switches work by CSS alone (`:has()` on the form's
 * inputs), so they work before and without the script.
 */
export const REPORT_CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1320px;padding:0 16px;color:#1f2937}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:15px;margin:16px 0 6px}
.summary{color:#6b7280;margin:0 0 4px}
.status{font-size:13px;margin:4px 0 12px;color:#6b7280}.status.live{color:#15803d}.status.stale{color:#b45309}
.controls{display:flex;gap:18px;align-items:center;margin:0 0 14px;font-size:13px;color:#374151}
.controls fieldset{border:0;margin:0;padding:0;display:flex;gap:8px}.controls legend{float:left;margin-right:6px;color:#6b7280}
.group{margin:0 0 18px}.group>summary{cursor:pointer;font-size:16px;font-weight:600;margin:0 0 10px}
.group .count{font-weight:400;color:#6b7280;font-size:13px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px}
figure{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:10px 12px}
figcaption{display:flex;gap:14px;align-items:center;margin-bottom:4px}
.name{font-weight:600;margin-right:auto;overflow-wrap:anywhere}
.keys{display:flex;flex-wrap:wrap;gap:4px 12px;justify-content:flex-end}
.key{color:#4b5563;font-size:12px;white-space:nowrap}
.swatch{display:inline-block;width:16px;height:0;border-top:3px solid;margin:0 5px 3px 0;vertical-align:middle}.swatch.dashed{border-top-style:dashed}
svg.chart{width:100%;height:auto;display:block}
.grid line{stroke:#eef0f3}.axis line{stroke:#9ca3af}
svg text{font-size:11px;fill:#4b5563}svg text.label{fill:#6b7280}svg text.empty{font-size:14px}
body:has(#x-time:checked) .by-step{display:none}
body:not(:has(#x-time:checked)) .by-time{display:none}
body:has(#smooth:checked) path.raw{opacity:.3}
body:not(:has(#smooth:checked)) path.smooth{display:none}
.note{color:#b45309;font-size:12px;margin:4px 0 0}
.constants{color:#4b5563;font-size:13px;margin:10px 0 0}.const{white-space:nowrap;margin-right:10px}
table{border-collapse:collapse}th,td{padding:4px 12px;border-bottom:1px solid #e5e7eb;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:6px;padding:12px;overflow:auto}
`;
