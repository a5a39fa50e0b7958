import { type NativeStatus, nativeKernels } from '../../src/kernels/native.js';

/**
 * The one place a test decides whether the native-kernel suites run. `nativeSkip` is null when
 * the addon loads, else the reason, for `describe.skipIf(nativeSkip !== null)`.
 *
 * Under TROUPE_REQUIRE_NATIVE=1 (set by .ci/run wherever it installed OpenBLAS, so that the
 * install script must have built the addon) a missing addon is no skip: importing this module
 * throws with the reason, which fails every test file that imports it.
 */
export function nativeSkipReason(
  status: NativeStatus,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | null {
  if (status.available) return null;
  if (env.TROUPE_REQUIRE_NATIVE === '1') {
    throw new Error(
      `TROUPE_REQUIRE_NATIVE=1, but the native kernels are missing: ${status.reason}`,
    );
  }
  return status.reason;
}

export const native: NativeStatus = nativeKernels();
export const nativeSkip: string | null = nativeSkipReason(native);
