import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { HostBoot } from './transport.js';

/** True when this module runs from TypeScript sources (tests, `tsx`), not the built package. */
export const fromSources = import.meta.url.endsWith('.ts');

/** The environment variable naming a compiled copy of src/ (laid out as dist/). */
export const SOURCES_BUILD_ENV = 'TROUPE_SOURCES_BUILD';

/** Where a host starts from: its entry module, and whether it needs tsx's TypeScript loader. */
export interface HostStart {
  readonly boot: HostBoot;
  /** The entry module's URL (`actors/worker-entry` or `actors/process-entry`). */
  readonly entry: URL;
  readonly needsLoader: boolean;
}

/**
 * Where a thread or child process of `boot` starts from. From the built package: its own
 * JavaScript entry. From the TypeScript sources: the sources, through tsx's loader, unless
 * `TROUPE_SOURCES_BUILD` names a compiled copy of this checkout's src/ (the test suite builds
 * one: scripts/sources-build.ts) and every role of the host lives in src/ with no TypeScript module
 * named in its arguments. Then the host runs that copy as plain JavaScript, its role modules
 * mapped src/X.ts → build/X.js: a thread starts about a second sooner without the loader, and
 * its code is the code the package ships. A role from elsewhere (a test's own role, a loss
 * registered from a .ts file) keeps the sources, so one host never mixes the two copies.
 */
export function hostStart(
  boot: HostBoot,
  name: 'worker-entry' | 'process-entry',
  env: NodeJS.ProcessEnv = process.env,
): HostStart {
  if (!fromSources)
    return { boot, entry: new URL(`./${name}.js`, import.meta.url), needsLoader: false };
  const sources = { boot, entry: new URL(`./${name}.ts`, import.meta.url), needsLoader: true };
  const build = env[SOURCES_BUILD_ENV];
  if (!build) return sources;
  const root = pathToFileURL(`${build}/`);
  const mapped = mapBoot(boot, new URL('../', import.meta.url).href, root.href);
  const entry = new URL(`actors/${name}.js`, root);
  if (!mapped || !existsSync(entry)) return sources;
  return { boot: mapped, entry, needsLoader: false };
}

/**
 * `boot` with every role module under `srcRoot` (a .ts file) renamed to its .js twin under
 * `buildRoot`, or undefined when a role lives elsewhere, its twin is missing, or an argument names
 * a TypeScript module (a string ending in .ts/.mts/.cts), which plain JavaScript cannot import.
 */
export function mapBoot(boot: HostBoot, srcRoot: string, buildRoot: string): HostBoot | undefined {
  const roles = [];
  for (const r of boot.roles) {
    if (!r.module.startsWith(srcRoot) || !r.module.endsWith('.ts')) return undefined;
    if (namesTypeScript(r.args)) return undefined;
    const module = buildRoot + r.module.slice(srcRoot.length, -'.ts'.length) + '.js';
    if (!existsSync(new URL(module))) return undefined;
    roles.push({ ...r, module });
  }
  return { ...boot, roles };
}

/** Whether a string anywhere in `x` (typed arrays skipped) names a TypeScript module. */
function namesTypeScript(x: unknown, depth = 0): boolean {
  if (typeof x === 'string') return /\.[mc]?ts$/.test(x);
  if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x) || depth > 32) return false;
  if (x instanceof ArrayBuffer || x instanceof SharedArrayBuffer) return false;
  const values = x instanceof Map ? [...x.keys(), ...x.values()] : Object.values(x);
  return values.some((v) => namesTypeScript(v, depth + 1));
}
