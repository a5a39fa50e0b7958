import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeSkip } from '../helpers/native.js';

/**
 * Troupe as a user's project gets it: `npm pack` (which builds dist/ through prepare) and
 * `npm install <tarball>` in a new project, dependencies from the configured registry and npm's
 * cache, then `npx troupe doctor --json` there. The pack runs in a copy of the sources, so this
 * checkout's dist/ is never rebuilt under the other test files.
 *
 * Measured on the 2-core CI machine: pack 3 s, install 14 s (the native build 3 s of it).
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
/** What `npm pack` reads: the sources prepare builds dist/ from, and what `files` ships. */
const PACKED = [
  'src',
  'scripts',
  'native',
  'data',
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'LICENSE',
];

/** This process's environment without npm's own variables (vitest may run under `npm test`). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.toLowerCase().startsWith('npm_') && k !== 'TROUPE_NATIVE' && k !== 'INIT_CWD',
    ),
  );
  return { ...env, ...extra };
}

let work = '';
let app = '';
let tarball = '';
const installed = () => join(app, 'node_modules', 'troupe');

async function doctor(): Promise<{
  native: { available: boolean; reason?: string; fix?: string; blas?: string };
}> {
  const { stdout } = await run(
    'npx',
    ['--no-install', 'troupe', 'doctor', '--json', '--no-measure'],
    {
      cwd: app,
      env: cleanEnv(),
      timeout: 60_000,
    },
  );
  return JSON.parse(stdout);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'troupe-install-'));
  const src = join(work, 'src');
  for (const p of PACKED) {
    cpSync(join(ROOT, p), join(src, p), {
      recursive: true,
      filter: (from) => !from.includes(join('native', 'build')),
    });
  }
  // prepare runs `tsc`: the checkout's own devDependencies serve.
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');
  await run('npm', ['pack', '--pack-destination', work, '--silent'], {
    cwd: src,
    env: cleanEnv(),
    timeout: 120_000,
  });
  tarball = join(work, 'troupe-0.1.0.tgz');
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify({ name: 'uses-troupe', version: '1.0.0', private: true })}\n`,
  );
  await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd: app,
    env: cleanEnv(),
    timeout: 240_000,
  });
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('installing Troupe as a dependency (npm pack → npm install → npx troupe doctor)', () => {
  it('the tarball ships dist/, LICENSE and the build script, and no built addon', async () => {
    const { stdout } = await run('tar', ['tzf', tarball]);
    const files = stdout.split('\n');
    for (const f of [
      'package/dist/index.js',
      'package/dist/cli/bin.js',
      'package/dist/cli/main.js',
      'package/dist/kernels/native.js',
      'package/LICENSE',
      'package/scripts/build-native.mjs',
      'package/native/troupe_native.c',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.includes('native/build'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('package/src/'))).toEqual([]);
  });

  it('the install script built the native kernels where this machine can (else doctor says why)', async () => {
    const r = await doctor();
    if (nativeSkip === null) {
      expect(r.native).toMatchObject({ available: true, blas: expect.any(String) });
      expect(existsSync(join(installed(), 'native', 'build', 'troupe_native.node'))).toBe(true);
    } else {
      // The checkout's own build failed here, so the dependency's did too: doctor has its reason.
      expect(r.native.available).toBe(false);
      expect(r.native.reason).toContain('the last attempt said');
      expect(r.native.fix).toBe('npx troupe-build-native');
    }
  });

  it('an install whose script never ran: doctor says so and names the command to run', async () => {
    rmSync(join(installed(), 'native', 'build'), { recursive: true, force: true });
    const r = await doctor();
    expect(r.native.available).toBe(false);
    expect(r.native.reason).toContain("Troupe's install script did not run");
    expect(r.native.reason).toContain('`npx troupe-build-native`');
    expect(r.native.fix).toBe('npx troupe-build-native');
  });

  it('a build that cannot run leaves the install working and says why; npx troupe-build-native then builds it', async () => {
    // No C compiler on PATH: the install script's --optional build gives up with the reason.
    const script = join(installed(), 'scripts', 'build-native.mjs');
    const skipped = await run(process.execPath, [script, '--optional'], {
      cwd: installed(),
      env: cleanEnv({ PATH: join(work, 'empty') }),
    });
    expect(skipped.stderr).toContain('troupe: native kernels not built: no C compiler');
    expect(skipped.stderr).toContain('to build them later: npx troupe-build-native');
    const r = await doctor();
    expect(r.native.available).toBe(false);
    expect(r.native.reason).toContain('the last attempt said: no C compiler (cc, gcc or clang)');

    // The fix doctor names, from the dependent project.
    const fix = run('npx', ['--no-install', 'troupe-build-native'], {
      cwd: app,
      env: cleanEnv(),
      timeout: 120_000,
    });
    if (nativeSkip !== null) {
      await expect(fix).rejects.toMatchObject({ stderr: expect.stringContaining('not built') });
      return;
    }
    expect((await fix).stderr).toContain('troupe: native kernels built');
    expect((await doctor()).native.available).toBe(true);
    expect(existsSync(join(installed(), 'native', 'build', 'not-built.txt'))).toBe(false);
  });
});
