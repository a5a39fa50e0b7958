import { beforeAll, describe, expect, it } from 'vitest';
import { setWasmBatchMatMul } from '../../../src/kernels/custom/index.js';
import { setNativeOptim } from '../../../src/kernels/custom/native-optim.js';
import { nativeKernels } from '../../../src/kernels/native.js';
import * as tf from '../../../src/kernels/tf.js';
import { ownCpuArray, ownWasmArray } from '../../../src/policy/optim/adamw-inplace.js';
import { AdamW } from '../../../src/policy/optim/index.js';
import type { ParamSpec } from '../../../src/policy/params.js';
import { useBackend } from '../../helpers/backends.js';
import { f32, normal } from './helpers.js';

const SPECS: ParamSpec[] = [
  { name: 'w', shape: [6, 5], kind: 'matrix' },
  { name: 'b', shape: [5], kind: 'bias' },
];
const size = (s: ParamSpec) => s.shape.reduce((a, b) => a * b, 1);
const OPTS = { lr: 1e-2, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1 };

function makeParams(): Map<string, tf.Variable> {
  return new Map(
    SPECS.map((s) => [
      s.name,
      tf.tidy(() => tf.variable(f32(normal(size(s), 0, `init ${s.name}`), s.shape))),
    ]),
  );
}

const grads = (step: number) =>
  new Map(SPECS.map((s) => [s.name, f32(normal(size(s), step, `grad ${s.name}`, 0.1), s.shape)]));

describe.skipIf(!nativeKernels().available)('AdamW in place on the cpu backend', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('owns an array only when nothing shares it', () => {
    const v = tf.tidy(() => tf.variable(tf.ones([3])));
    expect(ownCpuArray(v)).toBeInstanceOf(Float32Array);
    const r = tf.reshape(v, [1, 3]); // shares v's storage
    expect(ownCpuArray(v)).toBeUndefined();
    r.dispose();
    expect(ownCpuArray(v)).toBeDefined();
    expect(ownCpuArray(tf.tensor([1, 2], [2], 'int32'))).toBeUndefined();
    v.dispose();
  });

  it('writes param and moments where they are, with the same bits as the fresh-output kernel', async () => {
    const mine = makeParams();
    const theirs = makeParams();
    // a clone shares each of `theirs`' arrays, so their updates take the fresh-output path and
    // must leave the clones' values alone
    const clones = new Map([...theirs].map(([n, p]) => [n, tf.clone(p)]));
    const before = new Map([...clones].map(([n, c]) => [n, Float32Array.from(c.dataSync())]));
    const arrays = new Map([...mine].map(([n, p]) => [n, ownCpuArray(p)!]));
    const a = new AdamW(mine, SPECS, OPTS);
    const b = new AdamW(theirs, SPECS, OPTS);
    for (let step = 0; step < 4; step++) {
      const g = grads(step);
      a.step(g, 1e-2 * (step + 1));
      b.step(g, 1e-2 * (step + 1));
      tf.dispose([...g.values()]);
      // the shared ones moved to fresh arrays after their first update; unshare them once
      if (step === 0) tf.dispose([...clones.values()]);
    }
    for (const [n, p] of mine) {
      expect(ownCpuArray(p)).toBe(arrays.get(n)); // written in place: the same array
      expect(Array.from(p.dataSync())).toEqual(Array.from(theirs.get(n)!.dataSync()));
      expect(Array.from(p.dataSync())).not.toEqual(Array.from(before.get(n)!));
    }
    const sa = await a.stateDict();
    const sb = await b.stateDict();
    expect([...sa.tensors.keys()].sort()).toEqual([...sb.tensors.keys()].sort());
    expect(sa.tensors.size).toBe(4); // exp_avg and exp_avg_sq of w and b
    for (const [k, t] of sa.tensors) {
      expect(Array.from(t.data)).toEqual(Array.from(sb.tensors.get(k)!.data));
      expect(Array.from(t.data).some((x) => x !== 0)).toBe(true);
    }
    a.dispose();
    b.dispose();
    tf.dispose([...mine.values(), ...theirs.values()]);
  });

  it('leaves a shared parameter array unwritten', () => {
    const params = makeParams();
    const w = params.get('w')!;
    const view = tf.reshape(w, [30]);
    const old = Float32Array.from(view.dataSync());
    const opt = new AdamW(params, SPECS, OPTS);
    const g = grads(0);
    opt.step(g, 1e-2);
    expect(Array.from(view.dataSync())).toEqual(Array.from(old));
    expect(Array.from(w.dataSync())).not.toEqual(Array.from(old));
    tf.dispose([...g.values(), view, ...params.values()]);
    opt.dispose();
  });
});

describe.skipIf(!nativeKernels().available)('AdamW in place on the wasm backend', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('owns a tensor only when nothing shares it', () => {
    const v = tf.tidy(() => tf.variable(tf.ones([3])));
    expect(ownWasmArray(v)).toEqual(Float32Array.of(1, 1, 1));
    const r = tf.reshape(v, [1, 3]); // shares v's storage
    expect(ownWasmArray(v)).toBeUndefined();
    r.dispose();
    expect(ownWasmArray(v)).toBeDefined();
    expect(ownWasmArray(tf.tensor([1, 2], [2], 'int32'))).toBeUndefined();
    expect(ownCpuArray(v)).toBeUndefined(); // not a cpu tensor
    // tfjs' stock BatchMatMul (XNNPACK) caches packed weights by tensor id: never in place then
    setWasmBatchMatMul('stock');
    try {
      expect(ownWasmArray(v)).toBeUndefined();
    } finally {
      setWasmBatchMatMul(nativeKernels().available ? 'native' : 'fast');
    }
    expect(ownWasmArray(v)).toBeDefined();
    v.dispose();
    expect(ownWasmArray(v)).toBeUndefined();
  });

  it('updates every parameter where it is in one call, with the bits of the JS loop', async () => {
    const mine = makeParams();
    const ref = makeParams();
    const ids = new Map([...mine].map(([n, p]) => [n, [p.dataId, ownWasmArray(p)!.byteOffset]]));
    const a = new AdamW(mine, SPECS, OPTS);
    const b = new AdamW(ref, SPECS, { ...OPTS, offload: true });
    setNativeOptim(false); // b: the plain JS loop of stepOnHost
    try {
      for (let step = 0; step < 4; step++) {
        const g = grads(step);
        setNativeOptim(true);
        a.step(g, 1e-2 * (step + 1), 0.8);
        setNativeOptim(false);
        await b.stepOnHost(g, 1e-2 * (step + 1), 0.8);
        tf.dispose([...g.values()]);
      }
    } finally {
      setNativeOptim(true);
    }
    for (const [n, p] of mine) {
      // written in place: the same storage
      expect([p.dataId, ownWasmArray(p)!.byteOffset]).toEqual(ids.get(n));
      expect(Array.from(p.dataSync())).toEqual(Array.from(ref.get(n)!.dataSync()));
    }
    const [sa, sb] = [await a.stateDict(), await b.stateDict()];
    expect(sa.tensors.size).toBe(4);
    for (const [k, t] of sa.tensors) {
      expect(Array.from(t.data)).toEqual(Array.from(sb.tensors.get(k)!.data));
      expect(Array.from(t.data).some((x) => x !== 0)).toBe(true);
    }
    a.dispose();
    b.dispose();
    tf.dispose([...mine.values(), ...ref.values()]);
  });
});
