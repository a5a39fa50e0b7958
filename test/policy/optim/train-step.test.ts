import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nativeAdamWKernel, setNativeOptim } from '../../../src/kernels/custom/native-optim.js';
import * as tf from '../../../src/kernels/tf.js';
import type { CausalLM } from '../../../src/policy/model/causal-lm.js';
import { AdamW, reference as ref } from '../../../src/policy/optim/index.js';
import type { ParamSpec } from '../../../src/policy/params.js';
import {
  optimizerStep,
  type StepOutcome,
  type WeightedLoss,
} from '../../../src/policy/train-step.js';
import { BACKEND_CASES, expectClose, expectNoLeak, useBackend } from '../../helpers/backends.js';
import { nativeSkip } from '../../helpers/native.js';
import { normal } from './helpers.js';

/** A two-layer net's parameters, plus one the loss never touches (it steps with zeros). */
const SPECS: ParamSpec[] = [
  { name: 'w1', shape: [9, 13], kind: 'matrix' },
  { name: 'b1', shape: [13], kind: 'bias' },
  { name: 'w2', shape: [13, 3], kind: 'matrix' },
  { name: 'unused', shape: [4, 5], kind: 'matrix' },
];
const size = (s: ParamSpec) => s.shape.reduce((a, b) => a * b, 1);

/** optimizerStep needs only the model's parameters. */
function makeModel(): CausalLM {
  const params = new Map(
    SPECS.map((s) => [
      s.name,
      tf.tidy(() => tf.variable(tf.tensor(normal(size(s), 0, `init ${s.name}`), [...s.shape]))),
    ]),
  );
  return { params } as unknown as CausalLM;
}

/** Micro-batch `i` of `rows` rows: a tanh layer and a squared error, weighted by its rows. */
function lossFn(model: CausalLM, i: number, rows: number, scale = 1): () => WeightedLoss {
  return () => {
    const p = (n: string) => model.params.get(n)!;
    const x = tf.tensor(normal(rows * 9, i, 'x'), [rows, 9]);
    const t = tf.tensor(normal(rows * 3, i, 't'), [rows, 3]);
    const h = tf.tanh(tf.add(tf.matMul(x, p('w1')), p('b1')));
    const err = tf.sub(tf.matMul(h, p('w2')), t);
    const loss = tf.mul(tf.mean(tf.square(err)), scale) as tf.Scalar;
    return { loss, weight: rows, metrics: { absErr: tf.mean(tf.abs(err)) } };
  };
}

interface Run {
  outcomes: StepOutcome[];
  params: Map<string, Float32Array>;
}

/** 3 steps of optimizerStep over micro-batches of `rows` rows each. */
async function run(
  o: { offload: boolean; rows: number[]; maxGradNorm: number; identityReducer?: boolean },
  lossScale = 1,
): Promise<Run> {
  const model = makeModel();
  const opt = new AdamW(model.params, SPECS, {
    betas: [0.9, 0.95],
    weightDecay: 0.1,
    offload: o.offload,
  });
  const outcomes: StepOutcome[] = [];
  for (let step = 0; step < 3; step++) {
    const fns = o.rows.map((r, i) => lossFn(model, 10 * step + i, r, lossScale));
    outcomes.push(
      await expectNoLeak(() =>
        optimizerStep(model, opt, fns, {
          lr: 1e-2 * (step + 1),
          maxGradNorm: o.maxGradNorm,
          reducer: o.identityReducer ? { sum: (v) => v } : undefined,
        }),
      ),
    );
  }
  const params = new Map<string, Float32Array>();
  for (const [k, p] of model.params) params.set(k, (await p.data()) as Float32Array);
  opt.dispose();
  tf.dispose([...model.params.values()]);
  return { outcomes, params };
}

function expectSameRun(got: Run, want: Run, what: string): void {
  for (const [i, w] of want.outcomes.entries()) {
    const g = got.outcomes[i];
    expect(g.weight).toBe(w.weight);
    expectClose([g.loss, g.gradNorm, g.metrics.absErr], [w.loss, w.gradNorm, w.metrics.absErr], {
      atol: 0,
      rtol: 1e-6,
      what: `${what}: loss, gradNorm, metric at step ${i}`,
    });
  }
  for (const [k, p] of want.params) {
    expectClose(got.params.get(k)!, p, { atol: 1e-6, rtol: 1e-6, what: `${what}: ${k}` });
  }
}

for (const [backend, skip] of BACKEND_CASES) {
  const why = skip ?? nativeSkip;
  describe.skipIf(why !== null)(
    `optimizerStep, native path on and off, on ${backend}${why ? ` (${why})` : ''}`,
    () => {
      beforeAll(async () => {
        await useBackend(backend);
      });
      afterEach(() => setNativeOptim(true));

      const cases = [
        { offload: false, rows: [6], maxGradNorm: 0.05 }, // direct: no host copy (wasm, cpu)
        { offload: false, rows: [6], maxGradNorm: 0 },
        { offload: false, rows: [2, 5], maxGradNorm: 100 },
        { offload: true, rows: [6], maxGradNorm: 0.05 },
        { offload: true, rows: [3, 5], maxGradNorm: 0.05 },
        { offload: false, rows: [4], maxGradNorm: 0.05, identityReducer: true },
      ];
      it.each(cases)('gives the same loss, gradNorm, metrics and parameters: %j', async (c) => {
        setNativeOptim(false);
        const js = await run(c);
        setNativeOptim(true);
        expect(nativeAdamWKernel()).toBe(backend !== 'webgpu');
        const nat = await run(c);
        expectSameRun(nat, js, 'native vs JS');
        expect(nat.outcomes[0].gradNorm).toBeGreaterThan(0);
        // The clip bit: a norm over 0.05 was clipped in both.
        if (c.maxGradNorm === 0.05) expect(js.outcomes[0].gradNorm).toBeGreaterThan(0.05);
        // The untouched parameter still decays, as it does through the host copy.
        expect(nat.params.get('unused')).not.toEqual(normal(20, 0, 'init unused'));
      });

      for (const [offload, on] of [
        [false, true],
        [false, false],
        [true, true],
        [true, false],
      ]) {
        it(`follows the float64 reference: weighted mean, clip, AdamW (offload ${offload}, native ${on})`, async () => {
          setNativeOptim(on);
          const rows = [3, 5];
          // The reference, from each micro-batch's gradients read back.
          const model = makeModel();
          const vars = SPECS.map((s) => model.params.get(s.name)!);
          const sums = SPECS.map((s) => new Float64Array(size(s)));
          let loss = 0;
          for (const [i, r] of rows.entries()) {
            const { value, grads } = tf.variableGrads(() => lossFn(model, i, r)().loss, vars);
            loss += (await value.data())[0] * r;
            for (const [j, v] of vars.entries()) {
              const g = grads[v.name]
                ? await grads[v.name].data()
                : new Float32Array(size(SPECS[j]));
              for (let k = 0; k < g.length; k++) sums[j][k] += g[k] * r;
            }
            tf.dispose([value, ...Object.values(grads)]);
          }
          const mean = sums.map((g) => g.map((x) => x / 8));
          const clipped = ref.clipGradNorm(mean, 0.05);
          const o = { lr: 0.02, betas: [0.9, 0.95] as const, eps: 1e-8, weightDecay: 0.1 };
          const want = await Promise.all(
            vars.map(async (v, j) => {
              const st = ref.adamwState(await v.data());
              ref.adamwStep(st, clipped.grads[j], o, SPECS[j].kind === 'matrix');
              return st.p;
            }),
          );
          const opt = new AdamW(model.params, SPECS, { ...o, offload, betas: [0.9, 0.95] });
          const fns = rows.map((r, i) => lossFn(model, i, r));
          const out = await optimizerStep(model, opt, fns, { lr: 0.02, maxGradNorm: 0.05 });
          expect(out.weight).toBe(8);
          expectClose([out.loss, out.gradNorm], [loss / 8, clipped.totalNorm], {
            atol: 0,
            rtol: 1e-6,
            what: 'loss and gradNorm',
          });
          expect(clipped.totalNorm).toBeGreaterThan(0.05);
          for (const [j, v] of vars.entries()) {
            expectClose(await v.data(), want[j], { atol: 1e-6, rtol: 1e-5, what: SPECS[j].name });
          }
          opt.dispose();
          tf.dispose(vars);
        });
      }

      it.each([false, true])(
        'without a host copy (one micro-batch) equals the host round trip (offload %s)',
        async (offload) => {
          const direct = await run({ offload, rows: [6], maxGradNorm: 0.05 });
          const roundTrip = await run({
            offload,
            rows: [6],
            maxGradNorm: 0.05,
            identityReducer: true,
          });
          expectSameRun(direct, roundTrip, 'direct vs round trip');
        },
      );

      for (const on of [true, false]) {
        it(`skips a non-finite gradient norm and refuses a weight of 0 (native ${on})`, async () => {
          setNativeOptim(on);
          for (const offload of [false, true]) {
            const model = makeModel();
            const before = (await model.params.get('w1')!.data()).slice();
            const opt = new AdamW(model.params, SPECS, { offload });
            const out = await expectNoLeak(() =>
              optimizerStep(model, opt, [lossFn(model, 0, 4, Number.POSITIVE_INFINITY)], {
                lr: 0.1,
                maxGradNorm: 1,
              }),
            );
            expect(Number.isFinite(out.gradNorm)).toBe(false);
            expect(await model.params.get('w1')!.data()).toEqual(before);
            expect(opt.stepCount).toBe(0);
            const zero = () => ({ ...lossFn(model, 0, 4)(), weight: 0 });
            await expect(
              optimizerStep(model, opt, [zero], { lr: 0.1, maxGradNorm: 1 }),
            ).rejects.toThrow(/total weight 0/);
            opt.dispose();
            tf.dispose([...model.params.values()]);
          }
        });
      }
    },
  );
}
