#!/usr/bin/env node
/**
 * Self and total time by function of a V8 .cpuprofile (node --cpu-prof), heaviest first:
 *
 *   node scripts/cpuprofile-top.mjs FILE.cpuprofile [rows = 40] [filter] [under]
 *
 * filter: only rows whose function, file or line contain it; under: only the samples with a
 * function whose key contains it on their stack (e.g. 'gradients src/kernels' for the forward
 * and backward of a training step).
 * Self time is the samples whose top frame is the function; total time, the samples with the
 * function anywhere on the stack (once per sample however often it recurs). Functions are keyed
 * by name, file and line.
 */
import { readFileSync } from 'node:fs';

const [file, rowsArg = '40', filter = '', under = ''] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: cpuprofile-top.mjs FILE.cpuprofile [rows] [url filter]\n');
  process.exit(2);
}
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const key = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
};
const dt = prof.timeDeltas;
const self = new Map();
const total = new Map();
let all = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const ms = (dt[i + 1] ?? dt[i] ?? 0) / 1000;
  let n = byId.get(prof.samples[i]);
  if (under) {
    let m = n;
    while (m && !key(m).includes(under)) m = byId.get(parent.get(m.id));
    if (!m) continue;
  }
  all += ms;
  self.set(key(n), (self.get(key(n)) ?? 0) + ms);
  const seen = new Set();
  while (n) {
    const k = key(n);
    if (!seen.has(k)) {
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + ms);
    }
    n = byId.get(parent.get(n.id));
  }
}
const rows = Number(rowsArg);
const show = (title, m) => {
  process.stdout.write(`\n${title} (of ${all.toFixed(0)} ms sampled)\n`);
  for (const [k, ms] of [...m]
    .filter(([k]) => k.includes(filter))
    .sort((a, b) => b[1] - a[1])
    .slice(0, rows))
    process.stdout.write(`${ms.toFixed(1).padStart(9)} ms  ${k}\n`);
};
show('self', self);
show('total', total);
