import { expect } from 'vitest';
import { TroupeError } from '../../src/errors.js';

/**
 * The TroupeError `fn` throws, for a test to check its code, message and details. Fails the test
 * when `fn` returns, or throws anything but a TroupeError (every error Troupe raises is one).
 */
export function thrown(fn: () => unknown): TroupeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TroupeError);
    return e as TroupeError;
  }
  throw new Error('expected a TroupeError, but nothing was thrown');
}

/**
 * The TroupeError `p` rejects with: `thrown` for a promise. Fails the test when `p` resolves or
 * rejects with anything but a TroupeError.
 */
export async function rejected(p: Promise<unknown>): Promise<TroupeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TroupeError);
    return e as TroupeError;
  }
  throw new Error('expected a TroupeError, but the promise resolved');
}
