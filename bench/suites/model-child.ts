/**
 * One config of the `model` suite in a process of its own (forked by model.ts):
 *   model-child.ts BACKEND CONFIG quick|full [bf16-suite fp32|bf16 [generate-only]]
 * Streams rows, notes, progress lines and phases to the parent over IPC.
 */
import type { BackendName } from '../../src/kernels/backends/index.js';
import { startRuntime } from '../../src/kernels/runtime.js';
import type { ChildMessage } from './model.js';
import { bf16Cases, modelCases } from './model.js';
import { measureModel } from './model-measure.js';

const send = (m: ChildMessage) =>
  new Promise<void>((resolve) => {
    if (process.send) process.send(m, () => resolve());
    else {
      // Run by hand (no parent): print the progress lines.
      if (m.type === 'log') process.stdout.write(`${m.line}\n`);
      resolve();
    }
  });

const [backend, name, mode, set, precision, only] = process.argv.slice(2);
try {
  const cases =
    set === 'bf16-suite'
      ? bf16Cases(mode === 'quick', only === 'generate-only')
      : modelCases(backend, mode === 'quick');
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no config '${name}' for backend ${backend}`);
  await startRuntime({
    backend: backend as BackendName,
    ...(precision === 'bf16' ? { precision: 'bf16' as const } : {}),
  });
  await measureModel(c, {
    backend,
    log: (line) => void send({ type: 'log', line }),
    onRow: (row) => void send({ type: 'row', row }),
    onPhase: (phase) => void send({ type: 'phase', phase }),
  }).then(({ notes }) => Promise.all(notes.map((text) => send({ type: 'note', text }))));
  await send({ type: 'done' });
  process.exit(0);
} catch (e) {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  await send({ type: 'error', message: (e as Error).message ?? String(e) });
  process.exit(1);
}
