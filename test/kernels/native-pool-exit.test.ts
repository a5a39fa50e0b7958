import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { NATIVE_ADDON_PATH } from '../../src/kernels/native.js';
import { nativeSkip as skip } from '../helpers/native.js';

/*
 * A worker thread that used the native helper threads (pool.c) exits after Node has torn its
 * environment down; with no other environment holding the addon, Node unloads it, and the
 * pool's thread-exit destructor (in the addon) used to run unmapped code: SIGSEGV as the worker
 * exited (a GRPO run with the generator on the policy's thread). Run in a child process whose
 * main thread never loads the addon, as the launcher's is.
 */
const CHILD = `
const { Worker } = require('node:worker_threads');
const w = new Worker(\`
  const addon = require(\${JSON.stringify(process.argv[1])});
  addon.setThreads(2);
  // 8 rows · K 1024 · N 512: the small-M product splits its columns across 2 threads (pool.c)
  const [M, N, K] = [8, 512, 1024];
  const a = new Float32Array(M * K).fill(1), b = new Float32Array(K * N).fill(0.5);
  const c = new Float32Array(M * N);
  addon.sgemmBatched(false, false, 1, M, N, K, a, 0, b, 0, c);
  require('node:worker_threads').parentPort.postMessage(c[0]);
\`, { eval: true });
w.on('message', (v) => console.log('c0', v));
w.on('exit', (code) => console.log('worker exit', code));
`;

describe.skipIf(skip !== null)(`native helper threads${skip ? ` (${skip})` : ''}`, () => {
  it('a worker that used them exits cleanly, the addon unloaded with its environment', () => {
    const r = spawnSync(process.execPath, ['-e', CHILD, NATIVE_ADDON_PATH], { encoding: 'utf8' });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('c0 512'); // Σ_k 1·0.5 over 1024
    expect(r.stdout).toContain('worker exit 0');
  });
});
