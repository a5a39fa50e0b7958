import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

const made: string[] = [];

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test. */
export function tmpDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-train-'));
  made.push(dir);
  return dir;
}

/** A settable clock in milliseconds. */
export function fakeClock(start = 0): { now: () => number; set: (ms: number) => void } {
  let t = start;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
  };
}
