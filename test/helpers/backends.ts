import { probeBackends, type RuntimeInfo, startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';

/** Backends the kernel suites run on when present: `cpu` and `wasm` always, `webgpu` with Vulkan. */
export const SUITE_BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
export type SuiteBackend = (typeof SUITE_BACKENDS)[number];

const probes = await probeBackends();

/** [backend, skip reason or null] for each suite backend, decided once per test file. */
export const BACKEND_CASES: ReadonlyArray<readonly [SuiteBackend, string | null]> =
  SUITE_BACKENDS.map((name) => {
    const p = probes.find((x) => x.backend === name)!;
    return [name, p.available ? null : p.reason] as const;
  });

/** Switch this test file's thread to `backend`. */
export function useBackend(backend: SuiteBackend): Promise<RuntimeInfo> {
  return startRuntime({ backend });
}

/**
 * Read a tensor on any backend (webgpu has no dataSync) as float64 numbers.
 */
export async function read(t: tf.Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data());
}

/** Largest |a[i] - b[i]| / (atol + rtol·|b[i]|); ≤ 1 means close. */
export function closeness(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    const r = diff === 0 ? 0 : diff / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  return { worst, at, got: at >= 0 ? a[at] : NaN, want: at >= 0 ? b[at] : NaN };
}

/** Assert every element of `a` is within atol + rtol·|b| of `b`, naming the worst element. */
export function expectClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, what = 'values' } = {},
): void {
  const c = closeness(a, b, atol, rtol);
  if (!(c.worst <= 1)) {
    throw new Error(
      `${what}: element ${c.at} is ${c.got}, expected ${c.want} (atol ${atol}, rtol ${rtol}, ` +
        `off by ${c.worst.toFixed(2)}× the tolerance)`,
    );
  }
}

/** Run `fn` and assert the number of live tensors is the same afterwards. */
export async function expectNoLeak<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`tensor leak: ${before} tensors before, ${after} after`);
  return out;
}
