import { TroupeError } from '../errors.js';
import { nativeKernels } from './native.js';

/**
 * The precision of a thread's matrix products. `fp32`: float32 throughout. `bf16`: mixed
 * precision as PyTorch's `torch.autocast('cpu', dtype=torch.bfloat16)` does it — the operands of
 * every matrix product (the linear layers, attention, the LM head, and their gradients) are
 * rounded to bfloat16 (round to nearest even) and multiplied with float32 sums (native/bf16.c:
 * AMX or AVX512-BF16 where the CPU has them, the fp32 sgemm on the rounded values elsewhere);
 * the weights the optimizer updates, its moments, the gradients, the norms, softmax and the loss
 * stay float32. Unlike autocast, a product's output is kept in float32 rather than rounded to
 * bfloat16.
 *
 * One setting per thread (each actor's runtime has its own), read by the native kernels at each
 * call: products of fewer than BF16_MIN_ROWS rows (decoding steps) stay fp32, since rounding the
 * weights for a product that reads each of them once costs more than the product.
 */
export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/**
 * Why `precision: fp16` is refused, on every backend: none computes float16 here. webgpu and
 * tensorflow-gpu run tfjs' float32 kernels (there are no fp16 products to loss-scale), and the
 * CPU backends have bf16, which keeps float32's exponent range and so needs no loss scaling.
 */
export const FP16_REFUSAL =
  "fp16 is not offered: no backend here computes float16 (webgpu and tensorflow-gpu run tfjs' float32 kernels, so there are no fp16 products to loss-scale; wasm and cpu compute bf16, which has float32's exponent range and needs no loss scaling); use bf16 on wasm or cpu, or fp32";

/** The config's message for a precision it does not take (fp16 by name), else undefined. */
export function precisionRefusal(input: unknown): string | undefined {
  return input === 'fp16' || input === 'float16' ? FP16_REFUSAL : undefined;
}

/** Fewest rows of op(A) a bf16 product takes: one AMX row block (16 would leave half of it zero). */
export const BF16_MIN_ROWS = 32;

/** The backends that compute bf16 products: the native kernels' (wasm and cpu with the addon). */
export const BF16_BACKENDS = ['wasm', 'cpu'] as const;

let current: Precision = 'fp32';

/** This thread's matrix-product precision. */
export function matmulPrecision(): Precision {
  return current;
}

/** Whether a product of `rows` rows of op(A) runs in bf16 on this thread now. */
export function bf16Product(rows: number): boolean {
  return current === 'bf16' && rows >= BF16_MIN_ROWS;
}

/**
 * Why `backend` (a Troupe backend name) cannot compute `precision`, or undefined when it can.
 * fp16 is not offered: webgpu and tensorflow-gpu compute float32 in tfjs (no fp16 kernels to
 * loss-scale), and the CPU backends have bf16.
 */
export function precisionProblem(
  backend: string,
  precision: Precision,
  native: { available: boolean; reason?: string } = nativeKernels(),
): string | undefined {
  if (precision === 'fp32') return undefined;
  const can = `bf16 runs on the ${BF16_BACKENDS.join(' and ')} backends with Troupe's native kernels`;
  if (!(BF16_BACKENDS as readonly string[]).includes(backend)) {
    return `backend '${backend}' cannot compute precision bf16: tfjs has no bf16 kernels there, and Troupe's bf16 products are native CPU kernels (${can}); use backend wasm or cpu, or precision fp32`;
  }
  if (!native.available) {
    return `backend '${backend}' computes precision bf16 only with Troupe's native kernels, and they are not loaded (${native.reason}); ${can}, or use precision fp32`;
  }
  return undefined;
}

/** Throws a TroupeError UNSUPPORTED naming the backend and what can, when `backend` cannot compute `precision`. */
export function checkPrecision(backend: string, precision: Precision): void {
  const problem = precisionProblem(backend, precision);
  if (problem) {
    throw new TroupeError('UNSUPPORTED', problem, {
      details: { field: 'precision', backend, precision, backends: [...BF16_BACKENDS] },
    });
  }
}

/** Set this thread's precision for `backend` (its runtime's), after `checkPrecision`. */
export function usePrecision(backend: string, precision: Precision): void {
  checkPrecision(backend, precision);
  current = precision;
}

/** Run `f` with this thread's precision set to `precision` (no backend check: tests, benchmarks). */
export function withPrecision<T>(precision: Precision, f: () => T): T {
  const saved = current;
  current = precision;
  try {
    return f();
  } finally {
    current = saved;
  }
}
