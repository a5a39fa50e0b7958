import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/kernels/tf.js';
import { AdamW, reference as ref } from '../../../src/policy/optim/index.js';
import type { ParamSpec } from '../../../src/policy/params.js';
import {
  BACKEND_CASES,
  expectClose,
  expectNoLeak,
  read,
  useBackend,
} from '../../helpers/backends.js';
import { disposeAll, expectTroupeError, f32, normal } from './helpers.js';

/** One parameter of each kind, plus a matrix left out of training. */
const SPECS: ParamSpec[] = [
  { name: 'w', shape: [3, 4], kind: 'matrix' },
  { name: 'e', shape: [5, 3], kind: 'embedding' },
  { name: 'b', shape: [4], kind: 'bias' },
  { name: 'n', shape: [4], kind: 'norm' },
  { name: 'frozen', shape: [2, 2], kind: 'matrix' },
];
const size = (s: ParamSpec) => s.shape.reduce((a, b) => a * b, 1);
const OPTS = { lr: 1e-2, betas: [0.9, 0.95] as [number, number], eps: 1e-8, weightDecay: 0.1 };
const trainable = (name: string) => name !== 'frozen';

function makeParams(): Map<string, tf.Variable> {
  return new Map(
    SPECS.map((s) => [
      s.name,
      tf.tidy(() => tf.variable(f32(normal(size(s), 0, `init ${s.name}`), s.shape))),
    ]),
  );
}

/** Seeded grads growing with the step; the norm's are tiny (~1e-7), so where ε sits matters. */
function gradsAt(step: number, names = SPECS.map((s) => s.name)): Map<string, tf.Tensor> {
  return new Map(
    SPECS.filter((s) => names.includes(s.name)).map((s) => {
      const std = (s.name === 'n' ? 1e-7 : 0.1) * (step + 1);
      return [s.name, f32(normal(size(s), step, `grad ${s.name}`, std), s.shape)];
    }),
  );
}

function disposeParams(params: Map<string, tf.Variable>): void {
  tf.dispose([...params.values()]);
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`AdamW on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('matches the float64 reference over 6 steps, with the decay mask and a frozen param', async () => {
      const before = tf.memory().numTensors;
      const params = makeParams();
      const refs = new Map(
        SPECS.map((s) => [s.name, ref.adamwState(normal(size(s), 0, `init ${s.name}`))]),
      );
      const opt = new AdamW(params, SPECS, { ...OPTS, trainable });
      expect(opt.trainableNames).toEqual(['w', 'e', 'b', 'n']);
      const lrs = [1e-2, 2e-2, 3e-2, 2e-2, 1e-2, 5e-3]; // as a schedule would hand them out
      for (const [step, lr] of lrs.entries()) {
        const grads = gradsAt(step, ['w', 'e', 'b', 'n']);
        await expectNoLeak(() => opt.step(grads, lr));
        for (const [name, g] of grads) {
          ref.adamwStep(refs.get(name)!, await read(g), { ...OPTS, lr }, name === 'w');
        }
        disposeAll(grads);
      }
      expect(opt.stepCount).toBe(lrs.length);
      for (const s of SPECS) {
        const want = s.name === 'frozen' ? normal(4, 0, 'init frozen') : refs.get(s.name)!.p;
        expectClose(await read(params.get(s.name)!), want, {
          atol: 1e-6,
          rtol: 1e-5,
          what: s.name,
        });
      }
      expect(Array.from(await read(params.get('frozen')!))).toEqual(
        Array.from(Float32Array.from(normal(4, 0, 'init frozen'))),
      );
      opt.dispose();
      disposeParams(params);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('offloaded (state on the host, stepOnHost) matches the float64 reference, and round-trips its state', async () => {
      const params = makeParams();
      const refs = new Map(
        SPECS.map((s) => [s.name, ref.adamwState(normal(size(s), 0, `init ${s.name}`))]),
      );
      const opt = new AdamW(params, SPECS, { ...OPTS, trainable, offload: true });
      expect(opt.offloaded).toBe(true);
      const lrs = [1e-2, 2e-2, 3e-2];
      for (const [step, lr] of lrs.entries()) {
        const grads = gradsAt(step, ['w', 'e', 'b', 'n']);
        const host = new Map<string, Float32Array>();
        for (const [name, g] of grads) host.set(name, Float32Array.from(await read(g)));
        expect(() => opt.step(grads, lr)).toThrow(/offload/);
        await opt.stepOnHost(host, lr);
        for (const [name, g] of host) {
          ref.adamwStep(refs.get(name)!, g, { ...OPTS, lr }, name === 'w');
        }
        disposeAll(grads);
      }
      for (const s of SPECS.filter((x) => x.name !== 'frozen')) {
        expectClose(await read(params.get(s.name)!), refs.get(s.name)!.p, {
          atol: 1e-6,
          rtol: 1e-5,
          what: s.name,
        });
      }
      // The state dict of host moments loads into a device optimizer and back.
      const dict = await opt.stateDict();
      expect(dict.meta.paramSteps).toMatchObject({ w: 3, e: 3 });
      expectClose(dict.tensors.get('exp_avg/w')!.data, refs.get('w')!.m, {
        atol: 1e-6,
        rtol: 1e-5,
        what: 'exp_avg',
      });
      const onDevice = new AdamW(params, SPECS, { ...OPTS, trainable });
      onDevice.loadStateDict(dict);
      const again = new AdamW(params, SPECS, { ...OPTS, trainable, offload: true });
      again.loadStateDict(await onDevice.stateDict());
      expect((await again.stateDict()).tensors.get('exp_avg_sq/n')!.data).toEqual(
        dict.tensors.get('exp_avg_sq/n')!.data,
      );
      await expect(new AdamW(params, SPECS, OPTS).stepOnHost(new Map(), 1e-3)).rejects.toThrow(
        /call step/,
      );
      for (const o of [opt, onDevice, again]) o.dispose();
      disposeParams(params);
    });

    it('first step with a constant grad moves each param by lr·sign(g), plus lr·λ·p where decayed', async () => {
      const p0 = [1, 2, -1, 0.5];
      const g = [0.5, -2, 3e-3, -7];
      const [lr, wd] = [0.1, 0.01];
      const params = new Map([
        ['m', tf.tidy(() => tf.variable(f32(p0, [2, 2])))],
        ['b', tf.tidy(() => tf.variable(f32(p0, [4])))],
      ]);
      const specs: ParamSpec[] = [
        { name: 'm', shape: [2, 2], kind: 'matrix' },
        { name: 'b', shape: [4], kind: 'bias' },
      ];
      const opt = new AdamW(params, specs, { lr, weightDecay: wd });
      const grads = new Map([
        ['m', f32(g, [2, 2])],
        ['b', f32(g, [4])],
      ]);
      opt.step(grads);
      // m̂ = g and v̂ = g², so the Adam step is lr·g/(|g| + ε) = lr·sign(g) to float32 precision.
      const sign = g.map(Math.sign);
      const decayed = p0.map((p, i) => p * (1 - lr * wd) - lr * sign[i]);
      const plain = p0.map((p, i) => p - lr * sign[i]);
      expectClose(await read(params.get('m')!), decayed, { atol: 1e-6, rtol: 0, what: 'matrix' });
      expectClose(await read(params.get('b')!), plain, { atol: 1e-6, rtol: 0, what: 'bias' });
      disposeAll(grads);
      opt.dispose();
      disposeParams(params);
    });

    it('skips a param with no grad in a step: no decay, no moment update', async () => {
      const params = makeParams();
      const opt = new AdamW(params, SPECS, OPTS);
      const w0 = await read(params.get('w')!);
      const grads = gradsAt(0, ['e', 'b']);
      opt.step(grads);
      expect(await read(params.get('w')!)).toEqual(w0);
      const { meta } = await opt.stateDict();
      expect(meta.paramSteps).toEqual({ w: 0, e: 1, b: 1, n: 0, frozen: 0 });
      disposeAll(grads);
      opt.dispose();
      disposeParams(params);
    });
  });
}

describe('AdamW rules and errors', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('decays matrices only by default; flags and a predicate change that', () => {
    const params = makeParams();
    const decayed = (o: ConstructorParameters<typeof AdamW>[2]) => {
      const opt = new AdamW(params, SPECS, o);
      const out = opt.trainableNames.filter((n) => opt.decays(n));
      opt.dispose();
      return out;
    };
    expect(decayed({})).toEqual(['w', 'frozen']);
    expect(decayed({ decayEmbeddings: true })).toEqual(['w', 'e', 'frozen']);
    expect(decayed({ decayNormsAndBiases: true })).toEqual(['w', 'b', 'n', 'frozen']);
    expect(decayed({ noDecay: (n) => n !== 'b' })).toEqual(['b']);
    // A kind lookup works in place of specs.
    const opt = new AdamW(params, (n) => (n === 'e' ? 'embedding' : 'matrix'), {});
    expect(opt.trainableNames.filter((n) => opt.decays(n))).toEqual(['w', 'b', 'n', 'frozen']);
    opt.dispose();
    disposeParams(params);
  });

  it('refuses bad options, naming the field', () => {
    const params = makeParams();
    const make = (o: unknown) => () => new AdamW(params, SPECS, o as never);
    expectTroupeError(make({ betas: [0.9, 1] }), 'BAD_ARGUMENT', "'betas.1'", '[0, 1)');
    expectTroupeError(make({ lr: -1 }), 'BAD_ARGUMENT', "'lr'", '≥ 0');
    expectTroupeError(make({ weightDecay: Number.NaN }), 'BAD_ARGUMENT', "'weightDecay'");
    expectTroupeError(make({ learningRate: 1 }), 'BAD_ARGUMENT', "'learningRate'", 'Known: lr');
    expectTroupeError(
      make({ noDecay: () => true, decayEmbeddings: true }),
      'BAD_ARGUMENT',
      "'noDecay'",
      'either the predicate or the flags',
    );
    disposeParams(params);
  });

  it('refuses a trainable param without a kind, or whose spec shape differs', () => {
    const params = makeParams();
    const missing = SPECS.filter((s) => s.name !== 'n');
    expectTroupeError(() => new AdamW(params, missing), 'UNKNOWN_NAME', "'n'", 'noDecay');
    const wrong = SPECS.map((s) => (s.name === 'b' ? { ...s, shape: [5] } : s));
    expectTroupeError(() => new AdamW(params, wrong), 'SHAPE_MISMATCH', "'b'", '[4]', '[5]');
    disposeParams(params);
  });

  it('refuses bad grads and a bad lr without touching anything', async () => {
    const params = makeParams();
    const opt = new AdamW(params, SPECS, { ...OPTS, trainable });
    const w0 = await read(params.get('w')!);
    const bad = (name: string, shape: number[]) =>
      new Map([
        ['w', f32(new Float32Array(12).fill(1), [3, 4])],
        [name, tf.zeros(shape)],
      ]);
    const cases = [
      [bad('b', [2, 2]), 'SHAPE_MISMATCH', ["gradient for 'b'", '[2,2]', "parameter 'b'", '[4]']],
      [bad('nope', [4]), 'UNKNOWN_NAME', ["'nope'", 'Trainable: w, e, b, n']],
      [bad('frozen', [2, 2]), 'BAD_ARGUMENT', ["'frozen' is frozen"]],
    ] as const;
    for (const [grads, code, parts] of cases) {
      await expectNoLeak(() => expectTroupeError(() => opt.step(grads), code, ...parts));
      disposeAll(grads);
    }
    const ok = gradsAt(0);
    ok.delete('frozen');
    expectTroupeError(() => opt.step(ok, Number.NaN), 'BAD_ARGUMENT', 'lr must be');
    disposeAll(ok);
    expect(await read(params.get('w')!)).toEqual(w0);
    expect(opt.stepCount).toBe(0);
    opt.dispose();
    expectTroupeError(() => opt.step(new Map()), 'BAD_ARGUMENT', 'disposed');
    disposeParams(params);
  });
});
