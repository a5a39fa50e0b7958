import { TroupeError } from '../errors.js';

/**
 * A tensor as plain data, the form tensors take inside a frame: a dtype, a shape and a row-major
 * typed array whose type the dtype fixes. bfloat16 travels as its raw 16-bit patterns.
 */
export type WireTensor =
  | { readonly dtype: 'float32'; readonly shape: readonly number[]; readonly data: Float32Array }
  | { readonly dtype: 'int32'; readonly shape: readonly number[]; readonly data: Int32Array }
  | { readonly dtype: 'bool'; readonly shape: readonly number[]; readonly data: Uint8Array }
  | { readonly dtype: 'bfloat16'; readonly shape: readonly number[]; readonly data: Uint16Array };

export type WireDtype = WireTensor['dtype'];

/** The typed array each dtype's data must be. */
export const WIRE_ARRAYS = {
  float32: Float32Array,
  int32: Int32Array,
  bool: Uint8Array,
  bfloat16: Uint16Array,
} as const;

function bad(name: string, message: string): never {
  throw new TroupeError('BAD_ARGUMENT', `Tensor '${name}': ${message}`, { details: { name } });
}

/**
 * Checks that `t` is a WireTensor: a known dtype, a shape of integers ≥ 0, data of the dtype's
 * typed array with as many elements as the shape holds, bools 0 or 1. Errors name the tensor.
 */
export function checkWireTensor(t: unknown, name = 'tensor'): asserts t is WireTensor {
  if (t === null || typeof t !== 'object') bad(name, `expected { dtype, shape, data }, got ${t}`);
  const { dtype, shape, data } = t as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(WIRE_ARRAYS, dtype)) {
    bad(
      name,
      `unknown dtype ${JSON.stringify(dtype)}; known: ${Object.keys(WIRE_ARRAYS).join(', ')}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    bad(name, `shape must be an array of integers ≥ 0, got ${JSON.stringify(shape)}`);
  }
  const type = WIRE_ARRAYS[dtype as WireDtype];
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (!(data instanceof type)) {
    const got = data === null || typeof data !== 'object' ? String(data) : data.constructor.name;
    bad(name, `dtype ${dtype} needs data as ${type.name}, got ${got}`);
  }
  if (data.length !== n) {
    bad(name, `shape [${shape.join(', ')}] holds ${n} elements, data has ${data.length}`);
  }
  if (dtype === 'bool') {
    const i = (data as Uint8Array).findIndex((x) => x > 1);
    if (i >= 0) bad(name, `bool element ${i} is ${data[i]}; bools are 0 or 1`);
  }
}
