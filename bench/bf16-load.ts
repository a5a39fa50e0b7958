/**
 * The load of a frozen model under precision bf16 (#17), before and after: `fp32-first` builds
 * the whole model in fp32 on the backend and then rounds its matrices (loadModel + holdBf16, as
 * the roles did), `as-read` rounds each matrix on the host as it is read (policy/bf16.ts
 * loadFrozen). Each runs in a child process of its own so that its peak RSS is its own.
 *
 *   tsx bench/bf16-load.ts DIR [--backends wasm,cpu] [--reps 1] [--out bench/results/bf16-load.json]
 *     DIR: a Hugging Face model directory (scripts/memory/make-models.py writes the
 *     Qwen2.5-0.5B shape to /tmp/troupe-memory/qwen2.5-0.5b)
 *   tsx bench/bf16-load.ts DIR --child MODE BACKEND       (one measurement: prints RESULT {json})
 *
 * Reported per row: the process's peak RSS (getrusage maxRSS) and its RSS after the load, the
 * wasm heap's tensor high-water mark (each buffer once) and the size the wasm memory grew to (it
 * never shrinks), the bytes held (fp32 on the backend, bf16 panels on the host), the predictor's
 * backendPeak for the forward job (memory.ts), and the load's wall seconds. Timings are for
 * orientation: run under tbench on a shared machine.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { wasmTensorBytes } from '../src/kernels/backends/wasm.js';
import { startRuntime } from '../src/kernels/runtime.js';
import * as tf from '../src/kernels/tf.js';
import { holdBf16, loadFrozen, modelWeightBytes } from '../src/policy/bf16.js';
import { loadModel } from '../src/policy/io.js';
import { predictMemory } from '../src/policy/memory.js';
import { resolveModelSource } from '../src/policy/source.js';

const MODES = ['fp32-first', 'as-read'] as const;
type Mode = (typeof MODES)[number];

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    child: { type: 'boolean', default: false },
    backends: { type: 'string', default: 'wasm,cpu' },
    reps: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const MiB = 2 ** 20;

async function child(dir: string, mode: Mode, backend: 'wasm' | 'cpu') {
  await startRuntime({ backend, precision: 'bf16' });
  const source = await resolveModelSource(dir);
  const rssBefore = process.memoryUsage().rss;
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  wasmTensorBytes({ reset: true });
  const t0 = performance.now();
  const model =
    mode === 'as-read'
      ? await loadFrozen({ source })
      : await loadModel(source).then(async (m) => {
          await holdBf16(m);
          return m;
        });
  const seconds = (performance.now() - t0) / 1000;
  const heap = wasmTensorBytes();
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8: Uint8Array } }).wasm;
  const p = predictMemory({
    config: model.config,
    method: 'none',
    batch: 1,
    seq: 1,
    precision: 'bf16',
  });
  const result = {
    mode,
    backend,
    seconds,
    peakRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB,
    rssBeforeMiB: rssBefore / MiB,
    maxRssBeforeMiB: maxBefore / MiB,
    rssAfterMiB: process.memoryUsage().rss / MiB,
    heapTensorPeakMiB: heap ? heap.peakBytes / MiB : null,
    wasmMemoryMiB: wasm ? wasm.HEAPU8.buffer.byteLength / MiB : null,
    backendBytesMiB: tf.memory().numBytes / MiB,
    bf16BytesMiB: (model.weights16?.bytes ?? 0) / MiB,
    weightBytesMiB: modelWeightBytes(model) / MiB,
    fp32SizeMiB: (4 * p.params) / MiB,
    predictedBackendPeakMiB: p.backendPeak / MiB,
    params: p.params,
    loadavg: loadavg()[0],
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  model.dispose();
}

function driver(dir: string) {
  const self = fileURLToPath(import.meta.url);
  const rows: Record<string, unknown>[] = [];
  for (const backend of o.backends.split(',')) {
    for (const mode of MODES) {
      for (let r = 0; r < Number(o.reps); r++) {
        const run = spawnSync(
          process.execPath,
          [...process.execArgv, self, dir, '--child', mode, backend],
          { encoding: 'utf8', maxBuffer: 1 << 26 },
        );
        const line = run.stdout.split('\n').find((l) => l.startsWith('RESULT '));
        if (!line) {
          process.stderr.write(run.stderr);
          throw new Error(`${mode} on ${backend}: no RESULT (exit ${run.status})`);
        }
        const row = JSON.parse(line.slice('RESULT '.length));
        rows.push(row);
        process.stdout.write(`${JSON.stringify(row)}\n`);
      }
    }
  }
  if (o.out) {
    const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} vCPUs`;
    const at = new Date().toISOString();
    writeFileSync(o.out, `${JSON.stringify({ model: dir, machine, at, rows }, null, 2)}\n`);
  }
  const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(0) : '-');
  process.stdout.write(
    '\nbackend | load | peak RSS MiB | wasm tensor peak MiB | wasm memory MiB | s\n',
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.backend} | ${r.mode} | ${f(r.peakRssMiB)} | ${f(r.heapTensorPeakMiB)} | ${f(r.wasmMemoryMiB)} | ${(r.seconds as number).toFixed(1)}\n`,
    );
  }
}

const [dir, mode, backend] = positionals;
if (!dir) throw new Error('usage: tsx bench/bf16-load.ts DIR [--backends wasm,cpu] [--reps N]');
if (o.child) {
  if (!MODES.includes(mode as Mode)) throw new Error(`mode must be one of ${MODES.join(', ')}`);
  if (backend !== 'wasm' && backend !== 'cpu') throw new Error('backend must be wasm or cpu');
  await child(dir, mode as Mode, backend);
} else {
  driver(dir);
}
