import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { parseDevice } from '../../src/kernels/device.js';
import { currentRuntime, probeBackends, startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { rejected } from '../helpers/thrown.js';

describe('device strings', () => {
  it('parses cpu, gpu and gpu:N', () => {
    expect(parseDevice('cpu')).toEqual({ kind: 'cpu', index: 0 });
    expect(parseDevice('gpu')).toEqual({ kind: 'gpu', index: 0 });
    expect(parseDevice(' GPU:3 ')).toEqual({ kind: 'gpu', index: 3 });
  });

  it('rejects anything else, saying what is accepted', () => {
    expect(() => parseDevice('cuda:0')).toThrow(
      /Invalid device 'cuda:0'. Use 'cpu', 'gpu' or 'gpu:N'/,
    );
    expect(() => parseDevice('cpu:1')).toThrow(/the CPU is one device/);
  });
});

describe('startRuntime', () => {
  it('auto starts the first available backend of tensorflow-gpu → tensorflow → wasm → cpu and says why', async () => {
    const probes = await probeBackends();
    const order = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
    const expected = order.find((n) => probes.find((p) => p.backend === n)?.available);
    const info = await startRuntime({ backend: 'auto' });
    expect(info.backend).toBe(expected);
    expect(tf.getBackend()).toBe(info.backend === 'tensorflow-gpu' ? 'tensorflow' : info.backend);
    expect(info.reason).toMatch(/^auto: first available/);
    // Every backend tried before the pick is listed with the reason it was skipped.
    const tried = info.attempts.map((a) => a.backend);
    expect(tried).toEqual(order.slice(0, order.indexOf(expected!) + 1));
    for (const a of info.attempts.slice(0, -1)) {
      expect(a.available).toBe(false);
      expect(info.reason).toContain(`${a.backend}: ${a.reason}`);
    }
    expect(currentRuntime()).toBe(info);
  });

  it('starts an explicit backend and registers its kernels', async () => {
    const info = await startRuntime({ backend: 'wasm', device: 'cpu' });
    expect(info).toMatchObject({ backend: 'wasm', device: 'cpu' });
    expect(info.reason).toMatch(/^chosen by name/);
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
    const cpu = await startRuntime({ backend: 'cpu' });
    expect(cpu.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('fails for an explicit backend that is not installed, with the reason and what to install', async () => {
    const probes = await probeBackends();
    const missing = probes.find((p) => p.backend === 'tensorflow' && !p.available);
    if (!missing) return; // libtensorflow is installed here: nothing to refuse.
    const e = await rejected(startRuntime({ backend: 'tensorflow' }));
    expect(e.code).toBe('BACKEND_UNAVAILABLE');
    expect(e.message).toContain(`Backend 'tensorflow' is not available: ${missing.reason}`);
    expect(e.message).toContain('npm install @tensorflow/tfjs-node@4.22.0');
    expect(e.message).toContain("Or choose backend 'auto'");
  });

  it('refuses to place a CPU backend on a GPU, naming the backends that can', async () => {
    const e = await rejected(startRuntime({ backend: 'wasm', device: 'gpu:0' }));
    expect(e.code).toBe('BAD_DEVICE');
    expect(e.message).toMatch(
      /Backend 'wasm' cannot place tensors on 'gpu:0'.*use one of: tensorflow-gpu, webgpu/,
    );
  });

  it('auto on a GPU device tries only GPU backends', async () => {
    const probes = await probeBackends();
    const gpuAvailable = probes.some(
      (p) => (p.backend === 'tensorflow-gpu' || p.backend === 'webgpu') && p.available,
    );
    if (gpuAvailable) {
      const info = await startRuntime({ backend: 'auto', device: 'gpu:0' });
      expect(['tensorflow-gpu', 'webgpu']).toContain(info.backend);
      expect(info.device).toBe('gpu:0');
    } else {
      const e = await rejected(startRuntime({ backend: 'auto', device: 'gpu:0' }));
      expect(e.code).toBe('BACKEND_UNAVAILABLE');
      expect(e.message).toMatch(/No backend could start on gpu:0: tensorflow-gpu: .*; webgpu: /);
    }
  });

  it('lists the known backends for an unknown name', async () => {
    const e = await rejected(startRuntime({ backend: 'metal' as never }));
    expect(hasCode(e, 'UNKNOWN_NAME')).toBe(true);
    expect(e.message).toBe(
      "Unknown backend 'metal'. Known: tensorflow-gpu, tensorflow, wasm, webgpu, cpu.",
    );
  });
});
