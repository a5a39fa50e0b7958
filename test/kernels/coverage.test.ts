import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { BACKEND_CASES, closeness, expectNoLeak, read, useBackend } from '../helpers/backends.js';
import { type InputSpec, OP_CASES, type OpCase } from './op-cases.js';
import { MODEL_WORKLOADS, WORKLOADS as NUMERIC_WORKLOADS } from './workloads.js';

const WORKLOADS = [...NUMERIC_WORKLOADS, ...MODEL_WORKLOADS];

/**
 * Kernel coverage: every op case runs forward and backward on every backend available here and
 * is compared with `cpu`; every workload (the project's numerics, losses and models, forward and
 * backward) may dispatch only kernels that have a case. Set TROUPE_WRITE_COVERAGE=1 to rewrite
 * docs/kernel-coverage.md from the results.
 */

const COVERED = new Set(OP_CASES.map((c) => c.kernel));
/** Names tfjs' profiler gives custom-gradient scopes (`customGrad`); they are not kernels. */
const PSEUDO_KERNELS = new Set(['forward', 'unnamed scope']);

interface Outcome {
  readonly forward: number[];
  readonly grads: number[][];
  readonly gradShapes: number[][];
}

function drawInput(spec: InputSpec, s: RandomStream): tf.Tensor {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const draw = spec.draw ?? { kind: 'normal' };
  switch (draw.kind) {
    case 'normal':
      return tf.tensor(s.normal(n, 0, draw.scale ?? 1), spec.shape, 'float32');
    case 'positive':
      return tf.tensor(
        s.uniform(n).map((u) => 0.5 + 1.5 * u),
        spec.shape,
        'float32',
      );
    case 'int':
      return tf.tensor(
        Int32Array.from({ length: n }, () => s.nextInt(draw.max)),
        spec.shape,
        'int32',
      );
    case 'bool':
      return tf.tensor(
        Uint8Array.from({ length: n }, () => s.nextInt(2)),
        spec.shape,
        'bool',
      );
  }
}

const isFloat = (spec: InputSpec) =>
  (spec.draw?.kind ?? 'normal') === 'normal' || spec.draw?.kind === 'positive';

/** Forward value and the gradient of Σ w ⊙ fn(x) with respect to each float input. */
async function runCase(c: OpCase, index: number): Promise<Outcome> {
  const s = RandomStream.of({ seed: 2026, step: index, actor: 'coverage' });
  const xs = c.inputs.map((spec) => drawInput(spec, s));
  try {
    const y = tf.tidy(() => c.fn(...xs));
    const forward = Array.from(await read(y));
    const grads: number[][] = [];
    const gradShapes: number[][] = [];
    if (c.grad) {
      const w = tf.tensor(s.normal(y.size), y.shape, 'float32');
      const floatIdx = c.inputs.map((spec, i) => (isFloat(spec) ? i : -1)).filter((i) => i >= 0);
      const objective = (...vars: tf.Tensor[]) => {
        const args = xs.map((x, i) => (floatIdx.includes(i) ? vars[floatIdx.indexOf(i)] : x));
        return tf.sum(tf.mul(c.fn(...args), w));
      };
      const gs = tf.grads(objective)(floatIdx.map((i) => xs[i]));
      for (const g of gs) {
        grads.push(Array.from(await read(g)));
        gradShapes.push(g.shape);
      }
      tf.dispose([w, ...gs]);
    }
    y.dispose();
    return { forward, grads, gradShapes };
  } finally {
    tf.dispose(xs);
  }
}

const reference = new Map<number, Outcome>();
const results: Array<{
  backend: string;
  kernel: string;
  label: string;
  fwd: number;
  grad: number | null;
}> = [];

describe('kernel coverage: each op case on cpu (the reference)', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });
  it.each(OP_CASES.map((c, i) => [c.label, c, i] as const))('%s', async (_label, c, i) => {
    const out = await expectNoLeak(() => runCase(c, i));
    c.inputs.forEach((spec, k) => {
      if (c.grad && isFloat(spec)) {
        const j = c.inputs.slice(0, k).filter(isFloat).length;
        expect(out.gradShapes[j], `gradient shape of input ${k}`).toEqual(spec.shape);
      }
    });
    reference.set(i, out);
    results.push({
      backend: 'cpu',
      kernel: c.kernel,
      label: c.label,
      fwd: 0,
      grad: c.grad ? 0 : null,
    });
  });
});

for (const [backend, skip] of BACKEND_CASES.filter(([b]) => b !== 'cpu')) {
  describe.skipIf(skip !== null)(`kernel coverage on ${backend}${skip ? ` (${skip})` : ''}`, () => {
    beforeAll(async () => {
      await useBackend(backend);
    });
    it.each(OP_CASES.map((c, i) => [c.label, c, i] as const))('%s', async (_label, c, i) => {
      const want = reference.get(i);
      expect(want, 'the cpu reference for this case ran').toBeDefined();
      const got = await expectNoLeak(() => runCase(c, i));
      const fwd = closeness(got.forward, want!.forward, 1e-4, 1e-4);
      expect(
        fwd.worst,
        `forward element ${fwd.at}: ${fwd.got} vs cpu ${fwd.want}`,
      ).toBeLessThanOrEqual(1);
      let gradWorst: number | null = null;
      got.grads.forEach((g, k) => {
        expect(got.gradShapes[k]).toEqual(want!.gradShapes[k]);
        const cg = closeness(g, want!.grads[k], 1e-4, 1e-3);
        gradWorst = Math.max(gradWorst ?? 0, cg.worst);
        expect(
          cg.worst,
          `gradient ${k} element ${cg.at}: ${cg.got} vs cpu ${cg.want}`,
        ).toBeLessThanOrEqual(1);
      });
      results.push({ backend, kernel: c.kernel, label: c.label, fwd: fwd.worst, grad: gradWorst });
    });
  });
}

describe('kernel coverage: workloads dispatch only covered kernels', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it.each(WORKLOADS.map((w) => [w.name, w] as const))('%s', async (_name, w) => {
    const info = await tf.profile(() => {
      w.run();
    });
    const missing = info.kernelNames.filter((k) => !COVERED.has(k) && !PSEUDO_KERNELS.has(k));
    expect(
      missing,
      `workload '${w.name}' dispatches kernels with no case in test/kernels/op-cases.ts: ${missing.join(', ')}`,
    ).toEqual([]);
  });

  it('detects a kernel without a case (the check can fail)', async () => {
    const info = await tf.profile(() => {
      tf.tidy(() => tf.atan2(tf.scalar(1), tf.scalar(2)));
    });
    expect(info.kernelNames.filter((k) => !COVERED.has(k))).toEqual(['Atan2']);
  });
});

afterAll(() => {
  if (process.env['TROUPE_WRITE_COVERAGE'] !== '1') return;
  const backends = [...new Set(results.map((r) => r.backend))];
  const rows = OP_CASES.map((c) => {
    const cells = backends.map((b) => {
      const r = results.find((x) => x.backend === b && x.label === c.label);
      if (!r) return 'not run';
      return r.grad === null ? 'fwd ✓' : 'fwd ✓ grad ✓';
    });
    return `| \`${c.kernel}\` | ${c.label} | ${cells.join(' | ')} |`;
  });
  const skipped = BACKEND_CASES.filter(([, s]) => s !== null).map(
    ([b, s]) => `- \`${b}\`: skipped (${s})`,
  );
  const doc = [
    '# Kernel coverage',
    '',
    'Generated by `npm run docs:coverage` (test/kernels/coverage.test.ts). Each case runs forward and',
    'backward on every backend present and is compared with `cpu` (forward atol/rtol 1e-4, gradient',
    'atol 1e-4 rtol 1e-3); gradient shapes must equal input shapes. Workloads checked against this',
    `list: ${WORKLOADS.map((w) => `\`${w.name}\``).join(', ')}.`,
    '',
    'Gaps this test found in tfjs 4.22, each fixed by a kernel or gradient `startRuntime` registers',
    '(src/kernels/custom): wasm has no `UnsortedSegmentSum` (the gather gradient); wasm `GatherV2`',
    'returns wrong values with `batchDims > 0`; the gradients of `BatchMatMul`, `Maximum`, `Minimum`',
    'and `SquaredDifference` have the broadcast shape for a broadcast input on every backend;',
    'comparison and logic ops have no gradient. Separately, the stock wasm `BatchMatMul` is correct',
    'but slow for transposed and batched forms (see the README benchmark). The `Troupe…` kernels',
    "are the native addon's fused kernels (wasm and cpu where it is built); other backends run the",
    "composite ops in their place, so those rows check the native kernels against tfjs' own.",
    '',
    ...skipped,
    '',
    `| kernel | case | ${backends.join(' | ')} |`,
    `|---|---|${backends.map(() => '---').join('|')}|`,
    ...rows,
    '',
  ].join('\n');
  writeFileSync(new URL('../../docs/kernel-coverage.md', import.meta.url), doc);
});
