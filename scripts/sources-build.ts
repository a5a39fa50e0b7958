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
import { fileURLToPath } from 'node:url';
import { SOURCES_BUILD_ENV } from '../src/actors/built.js';

/** How old another checkout state's build must be before a run deletes it (hours). */
const PRUNE_AFTER_H = 12;

/**
 * A compiled copy of this checkout's src/ for the actors the tests and the benchmarks start
 * (src/actors/built.ts):
 * `tsc -p tsconfig.build.json` into `.test-build-<hash>/` at the repository root (the layout of
 * dist/, so its relative paths to native/, data/ and package.json hold), keyed by a hash of every
 * file under src/ and the tsconfigs, so a build is never stale and runs side by side never write
 * into each other's. Threads whose roles live in src/ then start as plain JavaScript, without
 * tsx's loader: about a second less each, over hundreds of threads in the test suite, and in a
 * benchmark the code the package ships (the loader's source maps and module hooks stay out of
 * the timed threads). Returns its path, or undefined (a warning said why) when tsc fails or
 * `fromSources` asks for the sources: every thread then runs the sources.
 */
export function sourcesBuild(root: string, fromSources = false): string | undefined {
  if (fromSources) return undefined;
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
      `build of src/ failed; actors run from the TypeScript sources:\n${out.slice(0, 2000)}`,
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

/**
 * Have the actors this process starts run the compiled copy of src/ (sourcesBuild): what the
 * benchmarks and profiling scripts time is then the JavaScript the package ships, not the
 * TypeScript sources through tsx's loader, whose hooks and source maps cost the timed threads
 * ~5 % of a GRPO iteration (measured on the Zen 3). TROUPE_BENCH_FROM_SOURCES=1 keeps the
 * sources. Returns the build's path, or undefined when the actors run the sources.
 */
export function compiledActors(): string | undefined {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const build = sourcesBuild(root, process.env.TROUPE_BENCH_FROM_SOURCES === '1');
  if (build) process.env[SOURCES_BUILD_ENV] = build;
  return build;
}
