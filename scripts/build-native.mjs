#!/usr/bin/env node
/**
 * Builds Troupe's optional native kernels (native/*.c: a Node-API addon over a CBLAS, which it
 * opens at load time, plus fused element-wise, attention, decoder-block and optimizer loops) into
 * native/build/troupe_native.node with the system C compiler. No download: the Node-API headers
 * come from this Node's own include directory (or the node-api-headers package when installed),
 * the BLAS from the system: OpenBLAS on Linux (`apt-get install libopenblas-dev`; the build checks
 * it is there), Accelerate on macOS (written for it, not yet run there).
 *
 *   node scripts/build-native.mjs            build; exit 1 on failure
 *   node scripts/build-native.mjs --optional build if possible; say why not and exit 0
 *
 * It is Troupe's `install` script (with --optional), so a clone's `npm ci` and a project that
 * installs Troupe as a dependency both build it where they can; and the `troupe-build-native` bin,
 * so a dependent project builds it later with `npx troupe-build-native`. When it does not build,
 * the reason is also left in native/build/not-built.txt, where `troupe doctor` reads it (npm hides
 * the output of a dependency's install script unless it fails).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');
const out = join(root, 'native', 'build', 'troupe_native.node');
const notBuilt = join(root, 'native', 'build', 'not-built.txt');
// The same command src/kernels/native.ts names: a dependency's bin, or the clone's npm script.
const retry = root.split(sep).includes('node_modules')
  ? 'npx troupe-build-native'
  : 'npm run build:native';

function give(reason) {
  mkdirSync(dirname(notBuilt), { recursive: true });
  writeFileSync(notBuilt, `${reason}\n`);
  const line = `troupe: native kernels not built: ${reason}`;
  if (optional) {
    process.stderr.write(
      `${line}\n  Troupe runs on wasm/cpu without them; to build them later: ${retry}\n`,
    );
    process.exit(0);
  }
  process.stderr.write(`${line}\n`);
  process.exit(1);
}

if (process.env.TROUPE_NATIVE === '0') give('TROUPE_NATIVE=0 in the environment');
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version']).status === 0);
if (!cc) give('no C compiler (cc, gcc or clang) on PATH');
const headerDirs = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  join(root, 'node_modules', 'node-api-headers', 'include'),
  '/usr/include/node',
].filter((d) => existsSync(join(d, 'node_api.h')));
if (headerDirs.length === 0) give('no Node-API headers (node_api.h) next to this Node');
// macOS: the BLAS is Accelerate, always there (opened at load, as OpenBLAS is elsewhere).
const darwin = process.platform === 'darwin';
const probe = darwin
  ? { status: 0 }
  : spawnSync(cc, ['-x', 'c', '-', '-lopenblas', '-o', '/dev/null'], {
      input: '#include <cblas.h>\nint main(void){return 0;}\n',
    });
if (probe.status !== 0) {
  give('OpenBLAS not found (cblas.h and -lopenblas): apt-get install libopenblas-dev');
}
mkdirSync(dirname(out), { recursive: true });
const sources = readdirSync(join(root, 'native'))
  .filter((f) => f.endsWith('.c'))
  .sort()
  .map((f) => join(root, 'native', f));
// Built on the machine that runs it, so tuned for its CPU where the compiler can tell.
// (-march=native on x86 and Linux arm64; Apple's clang on arm64 takes -mcpu=native instead)
const tune = ['-march=native', '-mcpu=native'].find(
  (flag) =>
    spawnSync(cc, [flag, '-x', 'c', '-', '-c', '-o', '/dev/null'], { input: 'int x;\n' }).status ===
    0,
);
const args = [
  '-O3',
  ...(tune ? [tune] : []),
  '-fno-math-errno',
  '-fopenmp-simd',
  // a Node addon resolves napi_* from the process that loads it
  ...(darwin ? ['-bundle', '-undefined', 'dynamic_lookup'] : ['-shared']),
  '-fPIC',
  '-Wall',
  '-DNODE_GYP_MODULE_NAME=troupe_native',
  '-DNAPI_VERSION=8',
  `-I${headerDirs[0]}`,
  ...sources,
  '-lm',
  '-ldl',
  '-o',
  `${out}.${process.pid}.tmp`,
];
try {
  execFileSync(cc, args, { stdio: 'inherit' });
  // A rename, not an overwrite: a process that has the old addon loaded keeps its mapping.
  renameSync(`${out}.${process.pid}.tmp`, out);
  rmSync(notBuilt, { force: true });
} catch (e) {
  rmSync(`${out}.${process.pid}.tmp`, { force: true });
  give(`${cc} failed: ${e.message}`);
}
try {
  const addon = (await import('node:module')).createRequire(import.meta.url)(out);
  process.stderr.write(
    `troupe: native kernels built: ${out} (${addon.config()}, ${addon.threads()} threads)\n`,
  );
} catch (e) {
  give(`built, but it does not load: ${e.message}`);
}
