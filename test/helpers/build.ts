import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';

/** How old another checkout state's build must be before a run deletes it (hours). */
const PRUNE_AFTER_H = 12;

/**
 * A compiled copy of this checkout's src/ for the actors the tests start (src/actors/built.ts):
 * `tsc -p tsconfig.build.json` into `.test-build-<hash>/` at the repository root (the layout of
 * dist/, so its relative paths to native/, data/ and package.json hold), keyed by a hash of every
 * file under src/ and the tsconfigs, so a build is never stale and runs side by side never write
 * into each other's. Threads whose roles live in src/ then start as plain JavaScript, without
 * tsx's loader: about a second less each, over hundreds of threads in the suite.
 * Returns its path, or undefined (a warning said why) when tsc fails or
 * TROUPE_TEST_FROM_SOURCES=1 asks for the sources: every thread then runs the sources, as before.
 */
export function testBuild(root: string): string | undefined {
  if (process.env.TROUPE_TEST_FROM_SOURCES === '1') return undefined;
  const dir = join(root, `.test-build-${sourcesHash(root)}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    const pkg = createRequire(join(root, 'package.json')).resolve('typescript/package.json');
    const tsc = join(dirname(pkg), 'bin', 'tsc');
    execFileSync(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--outDir', tmp, '--declaration', 'false'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    writeFileSync(join(tmp, '.complete'), '');
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another run built the same sources first: use its copy.
      if (!existsSync(done)) throw e;
    }
  } catch (e) {
    const out = (e as { stdout?: Buffer }).stdout?.toString() || String(e);
    console.warn(
      `test build failed; actors run from the TypeScript sources:\n${out.slice(0, 2000)}`,
    );
    return undefined;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  prune(root, dir);
  return dir;
}

/** sha256 of the build's inputs: every file under src/ (path and bytes) and both tsconfigs. */
function sourcesHash(root: string): string {
  const h = createHash('sha256');
  const files = [
    join(root, 'tsconfig.json'),
    join(root, 'tsconfig.build.json'),
    ...walk(join(root, 'src')),
  ];
  for (const f of files.sort())
    h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex').slice(0, 16);
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Removes other states' builds not touched for PRUNE_AFTER_H hours (a run may still use a newer one). */
function prune(root: string, keep: string): void {
  const cutoff = Date.now() - PRUNE_AFTER_H * 3600_000;
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (!name.startsWith('.test-build-') || path === keep) continue;
    try {
      if (statSync(path).mtimeMs < cutoff) rmSync(path, { recursive: true, force: true });
    } catch {
      // Removed by another run meanwhile.
    }
  }
}
