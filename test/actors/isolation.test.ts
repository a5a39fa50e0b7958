import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { anyDetached, buffersOf, findUncrossable } from '../../src/actors/crossing.js';
import { placeHost } from '../../src/actors/isolation.js';
import { startProcess } from '../../src/actors/process.js';
import { startThread } from '../../src/actors/spawn.js';
import { thrown } from '../helpers/thrown.js';

const gpu = (device: string, isolation?: 'thread' | 'process') => ({
  runtime: { backend: 'tensorflow-gpu' as const, device },
  isolation,
});

describe('thread or process: placeHost', () => {
  it('defaults to a thread, and gives a process only when asked (with its env)', () => {
    expect(placeHost('a', {})).toMatchObject({ isolation: 'thread', launch: startThread });
    expect(placeHost('a', { runtime: { backend: 'wasm', device: 'cpu' } }).isolation).toBe(
      'thread',
    );
    expect(placeHost('a', { isolation: 'process', env: { X: '1' } })).toMatchObject({
      isolation: 'process',
      env: { X: '1' },
      launch: startProcess,
    });
  });

  it('puts tensorflow-gpu on gpu:N in a process that sees only that GPU', () => {
    expect(placeHost('policy', gpu('gpu:1'), {})).toMatchObject({
      isolation: 'process',
      env: { CUDA_VISIBLE_DEVICES: '1' },
      why: "backend 'tensorflow-gpu' picks its device per process (CUDA_VISIBLE_DEVICES=1)",
    });
    // Indices count the GPUs this process sees.
    expect(placeHost('policy', gpu('gpu:1'), { CUDA_VISIBLE_DEVICES: '4, 6' }).env).toEqual({
      CUDA_VISIBLE_DEVICES: '6',
    });
    expect(placeHost('p', { ...gpu('gpu:0'), env: { Y: 'y' } }, {}).env).toEqual({
      Y: 'y',
      CUDA_VISIBLE_DEVICES: '0',
    });
    // 'gpu' names no GPU: whatever the process sees, in a thread as before.
    expect(placeHost('policy', gpu('gpu'), {}).isolation).toBe('thread');
  });

  it('refuses what it cannot honour, saying why', () => {
    expect(thrown(() => placeHost('policy', gpu('gpu:1', 'thread'), {}))).toMatchObject({
      code: 'BAD_DEVICE',
      message:
        "Actor 'policy': backend 'tensorflow-gpu' picks its GPU once per process (libtensorflow reads " +
        "CUDA_VISIBLE_DEVICES when it loads), and a worker thread shares the controller's process, so " +
        "device 'gpu:1' cannot be honoured in a thread. Use isolation 'process' (the default for this " +
        "device), or device 'gpu' for whichever GPU the process sees.",
    });
    expect(
      thrown(() => placeHost('policy', gpu('gpu:2'), { CUDA_VISIBLE_DEVICES: '4,6' })),
    ).toMatchObject({
      code: 'BAD_DEVICE',
      message: `Device 'gpu:2' is not visible: CUDA_VISIBLE_DEVICES="4,6" exposes 2 GPUs (gpu:0 to gpu:1)`,
    });
    expect(
      thrown(() => placeHost('p', { ...gpu('gpu:1'), env: { CUDA_VISIBLE_DEVICES: '0' } }, {})),
    ).toMatchObject({ code: 'BAD_ARGUMENT' });
    expect(thrown(() => placeHost('p', { env: { X: '1' } }))).toMatchObject({
      code: 'BAD_ARGUMENT',
      message:
        "Actor 'p': 'env' needs isolation 'process' (a thread shares the controller's environment)",
    });
    expect(thrown(() => placeHost('p', { isolation: 'machine' as never }))).toMatchObject({
      code: 'BAD_ARGUMENT',
      message: `Actor 'p': unknown isolation "machine". Known: thread, process.`,
    });
  });
});

describe('what may cross a process boundary', () => {
  it('finds shared memory and ports wherever they sit, and nothing in plain data', () => {
    const sab = new SharedArrayBuffer(8);
    expect(findUncrossable({ a: [1, { b: new Int32Array(sab) }] }, 'args')).toEqual({
      path: 'args.a[1].b',
      what: 'SharedArrayBuffer',
    });
    expect(findUncrossable(new Map([['w', { buffer: sab }]]), 'x')).toEqual({
      path: 'x.w.buffer',
      what: 'SharedArrayBuffer',
    });
    const { port1, port2 } = new MessageChannel();
    expect(findUncrossable([{ 'odd key': port1 }], 'r')).toEqual({
      path: 'r[0]["odd key"]',
      what: 'MessagePort',
    });
    port1.close();
    port2.close();
    const cyclic: Record<string, unknown> = { f: new Float32Array(4), n: 1, s: 'x' };
    cyclic['self'] = cyclic;
    expect(findUncrossable([cyclic, new ArrayBuffer(4), 7n, null], 'args')).toBeUndefined();
  });

  it('tells when a buffer it saw has been transferred away', () => {
    const view = new Float32Array(4);
    const seen = buffersOf([{ x: view }, new ArrayBuffer(0)]);
    expect(seen.map((b) => b.bytes)).toEqual([16, 0]);
    expect(anyDetached(seen)).toBe(false);
    structuredClone(view.buffer, { transfer: [view.buffer] });
    expect(anyDetached(seen)).toBe(true);
  });
});
