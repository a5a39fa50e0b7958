import { describe, expect, it } from 'vitest';
import { nativeBuildCommand, notBuiltReason } from '../../src/kernels/native.js';
import { nativeSkipReason } from './native.js';

const missing = { available: false, reason: 'not built (the last attempt said: no BLAS)' } as const;

describe('nativeSkipReason (every native suite skips through it)', () => {
  it('runs the suites where the addon loads, skips them with the reason where it does not', () => {
    expect(nativeSkipReason({ available: true, addon: {} as never, path: 'x' }, {})).toBeNull();
    expect(nativeSkipReason(missing, {})).toBe(missing.reason);
  });

  it('under TROUPE_REQUIRE_NATIVE=1 a missing addon is an error with the reason, not a skip', () => {
    expect(() => nativeSkipReason(missing, { TROUPE_REQUIRE_NATIVE: '1' })).toThrow(
      'TROUPE_REQUIRE_NATIVE=1, but the native kernels are missing: not built (the last attempt said: no BLAS)',
    );
    expect(
      nativeSkipReason(
        { available: true, addon: {} as never, path: 'x' },
        { TROUPE_REQUIRE_NATIVE: '1' },
      ),
    ).toBeNull();
  });
});

describe('what a missing addon tells the user', () => {
  const dep = '/home/u/app/node_modules/troupe/native/build/troupe_native.node';
  const clone = '/home/u/troupe/native/build/troupe_native.node';

  it('names the command that works from where Troupe is: a dependent project or a clone', () => {
    expect(nativeBuildCommand(dep)).toBe('npx troupe-build-native');
    expect(nativeBuildCommand(clone)).toBe('npm run build:native');
  });

  it("gives the last build's own reason, or says the install script never ran", () => {
    expect(notBuiltReason('OpenBLAS not found (cblas.h and -lopenblas)\n', dep)).toBe(
      'not built (the last attempt said: OpenBLAS not found (cblas.h and -lopenblas))',
    );
    expect(notBuiltReason(undefined, dep)).toContain("Troupe's install script did not run");
    expect(notBuiltReason(undefined, clone)).toBe('not built');
  });
});
