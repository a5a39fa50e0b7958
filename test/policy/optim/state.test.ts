import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../../src/kernels/tf.js';
import { AdamW, type AdamWStateDict } from '../../../src/policy/optim/index.js';
import type { ParamSpec } from '../../../src/policy/params.js';
import { BACKEND_CASES, expectNoLeak, read, useBackend } from '../../helpers/backends.js';
import { disposeAll, expectTroupeError, f32, normal } from './helpers.js';

const SPECS: ParamSpec[] = [
  { name: 'w', shape: [3, 4], kind: 'matrix' },
  { name: 'b', shape: [4], kind: 'bias' },
  { name: 'lora_A', shape: [3, 2], kind: 'matrix' },
];
const size = (s: ParamSpec) => s.shape.reduce((a, b) => a * b, 1);
const OPTS = { lr: 1e-2, weightDecay: 0.1, trainable: (n: string) => n !== 'w' };

function makeParams(): Map<string, tf.Variable> {
  return new Map(
    SPECS.map((s) => [
      s.name,
      tf.tidy(() => tf.variable(f32(normal(size(s), 0, s.name), s.shape))),
    ]),
  );
}

/** Steps [from, to) of seeded grads (none for the frozen 'w') at lr 1e-2·(1 + step/10). */
function train(opt: AdamW, from: number, to: number): void {
  for (let step = from; step < to; step++) {
    const grads = new Map(
      SPECS.filter((s) => s.name !== 'w').map((s) => [
        s.name,
        f32(normal(size(s), step, `g ${s.name}`), s.shape),
      ]),
    );
    opt.step(grads, 1e-2 * (1 + step / 10));
    disposeAll(grads);
  }
}

async function values(params: Map<string, tf.Variable>): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, v] of params) out[name] = Array.from(await read(v));
  return out;
}

for (const [backend, skip] of BACKEND_CASES) {
  describe.skipIf(skip !== null)(`AdamW state on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });

    it('3 steps + save + a new optimizer + load + 2 steps is bit-identical to 5 steps', async () => {
      const straight = makeParams();
      const a = new AdamW(straight, SPECS, OPTS);
      train(a, 0, 5);

      const resumed = makeParams();
      const b = new AdamW(resumed, SPECS, OPTS);
      train(b, 0, 3);
      const saved = await expectNoLeak(() => b.stateDict());
      b.dispose();
      // Through JSON, as a checkpoint's metadata would travel.
      const meta = JSON.parse(JSON.stringify(saved.meta));
      const c = new AdamW(resumed, SPECS, OPTS);
      await expectNoLeak(() => c.loadStateDict({ tensors: saved.tensors, meta }));
      expect(c.stepCount).toBe(3);
      train(c, 3, 5);

      expect(await values(resumed)).toEqual(await values(straight));
      const [sa, sc] = [await a.stateDict(), await c.stateDict()];
      expect(sc.meta).toEqual(sa.meta);
      expect(sc.tensors).toEqual(sa.tensors);
      for (const o of [a, c]) o.dispose();
      tf.dispose([...straight.values(), ...resumed.values()]);
    });
  });
}

describe('AdamW state dict contents and checks', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('names moments exp_avg/<param> and exp_avg_sq/<param>, for trainable params only', async () => {
    const params = makeParams();
    const opt = new AdamW(params, SPECS, OPTS);
    train(opt, 0, 2);
    const { tensors, meta } = await opt.stateDict();
    expect([...tensors.keys()]).toEqual([
      'exp_avg/b',
      'exp_avg_sq/b',
      'exp_avg/lora_A',
      'exp_avg_sq/lora_A',
    ]);
    expect(tensors.get('exp_avg/lora_A')!.shape).toEqual([3, 2]);
    expect(tensors.get('exp_avg/lora_A')!.data).toBeInstanceOf(Float32Array);
    expect(meta).toEqual({
      optimizer: 'adamw',
      step: 2,
      paramSteps: { b: 2, lora_A: 2 },
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0.1,
      lr: 1e-2,
    });
    opt.dispose();
    tf.dispose([...params.values()]);
  });

  it('refuses missing, extra and misshapen tensors and changed hyperparameters, naming them', async () => {
    const params = makeParams();
    const opt = new AdamW(params, SPECS, OPTS);
    train(opt, 0, 1);
    const good = await opt.stateDict();
    const edit = (
      f: (d: { tensors: Map<string, unknown>; meta: Record<string, unknown> }) => void,
    ) => {
      const d = { tensors: new Map(good.tensors), meta: { ...good.meta } };
      f(d as never);
      return () => opt.loadStateDict(d as AdamWStateDict);
    };
    expectTroupeError(
      edit((d) => d.tensors.delete('exp_avg_sq/b')),
      'UNKNOWN_NAME',
      "no 'exp_avg_sq/b'",
      "parameter 'b'",
    );
    expectTroupeError(
      edit((d) => d.tensors.set('exp_avg/w', good.tensors.get('exp_avg/b'))),
      'UNKNOWN_NAME',
      "'exp_avg/w'",
    );
    expectTroupeError(
      edit((d) => d.tensors.set('exp_avg/b', { shape: [2, 2], data: new Float32Array(4) })),
      'SHAPE_MISMATCH',
      "'exp_avg/b' has shape [2,2]",
      "parameter 'b' has shape [4]",
    );
    expectTroupeError(
      edit((d) => {
        d.meta.betas = [0.9, 0.95];
      }),
      'BAD_ARGUMENT',
      'saved with betas [0.9,0.95]',
      'Construct the optimizer with betas',
    );
    expectTroupeError(
      edit((d) => {
        d.meta.paramSteps = { b: 1 };
      }),
      'BAD_ARGUMENT',
      "paramSteps['lora_A']",
    );
    expectTroupeError(
      edit((d) => {
        d.meta.optimizer = 'sgd';
      }),
      'BAD_ARGUMENT',
      "'sgd'",
    );
    // Nothing was written by the refused loads.
    const after = await opt.stateDict();
    expect(after.tensors).toEqual(good.tensors);
    expect(after.meta).toEqual(good.meta);
    opt.dispose();
    tf.dispose([...params.values()]);
  });
});
