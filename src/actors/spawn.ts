import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type TransferListItem, Worker } from 'node:worker_threads';
import type { BootData } from './host.js';

/**
 * Start a thread running the actor host. From the built package the entry is plain JS; from
 * TypeScript sources (tests, `tsx`) the thread first registers tsx's loader, since Node 20
 * workers cannot load `.ts` files by themselves (RUNTIME-NOTES).
 */
export function startThread(data: BootData, transferList: TransferListItem[]): Worker {
  const fromSources = import.meta.url.endsWith('.ts');
  const entry = new URL(`./worker-entry.${fromSources ? 'ts' : 'js'}`, import.meta.url);
  const options = { workerData: data, transferList, name: data.thread };
  if (!fromSources) return new Worker(entry, options);
  const tsx = tsxEsmApi();
  const code =
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })` +
    '.catch((e) => { setImmediate(() => { throw e; }); });';
  return new Worker(code, { ...options, eval: true });
}

/** The ESM build of tsx's loader API (its CJS build cannot register the ESM loader). */
function tsxEsmApi(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return pathToFileURL(join(dirname(pkgJson), pkg.exports['./esm/api'].import.default)).href;
}
