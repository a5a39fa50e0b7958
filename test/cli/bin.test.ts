import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HUGE_PAGES_TUNABLE, hugePagesEnv, onGlibc } from '../../src/cli/huge-pages.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

describe('the troupe executable and glibc huge pages', () => {
  it('restarts with the huge-page tunable only where glibc runs and nobody set one', () => {
    expect(hugePagesEnv({ PATH: '/bin' }, true)).toEqual({
      PATH: '/bin',
      GLIBC_TUNABLES: HUGE_PAGES_TUNABLE,
    });
    expect(hugePagesEnv({}, false)).toBeUndefined(); // musl, macOS, Windows
    expect(hugePagesEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, true)).toBeUndefined();
    expect(hugePagesEnv({ GLIBC_TUNABLES: '' }, true)).toBeUndefined(); // set, even if empty
    expect(hugePagesEnv({ TROUPE_HUGE_PAGES: '0' }, true)).toBeUndefined();
  });

  // A preload run by every process the executable starts prints what that process sees.
  const probe = `data:text/javascript,${encodeURIComponent(
    'process.stderr.write("probe " + process.pid + " " + (process.env.GLIBC_TUNABLES ?? "-") + "\\n")',
  )}`;
  const run = (args: string[], env: NodeJS.ProcessEnv) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', probe, BIN, ...args], {
      encoding: 'utf8',
      env,
    });
    const seen = [...r.stderr.matchAll(/^probe (\d+) (.*)$/gm)].map((m) => m[2]);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, seen };
  };
  const base = { ...process.env };
  delete base.GLIBC_TUNABLES;
  delete base.TROUPE_HUGE_PAGES;

  it.runIf(onGlibc())(
    "runs the command in a child that has the tunable, with the child's output and status",
    () => {
      const ok = run(['--version'], base);
      expect(ok.status).toBe(0);
      expect(ok.stdout).toMatch(/^troupe \d+\.\d+\.\d+/);
      expect(ok.seen).toEqual(['-', HUGE_PAGES_TUNABLE]); // this process, then its child
      const bad = run(['no-such-command'], base);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toContain("unknown command 'no-such-command'");
    },
  );

  it('runs the command in its own process where the user set the tunables, or opted out', () => {
    const theirs = run(['--version'], { ...base, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
    expect(theirs.status).toBe(0);
    expect(theirs.seen).toEqual(['glibc.malloc.arena_max=2']); // one process: no restart
    const off = run(['--version'], { ...base, TROUPE_HUGE_PAGES: '0' });
    expect(off.status).toBe(0);
    expect(off.seen).toEqual(['-']);
  });
});
