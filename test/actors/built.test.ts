import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hostStart, mapBoot, SOURCES_BUILD_ENV } from '../../src/actors/built.js';
import type { HostBoot } from '../../src/actors/transport.js';
import { POLICY } from '../../src/algorithms/roles/policy.js';
import { ECHO } from './fixtures/echo-role.js';

const SRC = new URL('../../src/', import.meta.url).href;
const boot = (module: string, args: unknown = {}): HostBoot => ({
  thread: 't',
  runtime: { backend: 'cpu' },
  roles: [{ name: 'r', module, exportName: 'create', args }],
});

describe('a host started from a compiled copy of the sources', () => {
  const build = process.env[SOURCES_BUILD_ENV];

  it('exists for this run (vitest.config.ts builds it unless TROUPE_TEST_FROM_SOURCES=1)', () => {
    if (process.env.TROUPE_TEST_FROM_SOURCES === '1') expect(build).toBeUndefined();
    else expect(build && existsSync(`${build}/.complete`)).toBe(true);
  });

  it('maps a role in src/ to its .js twin and keeps everything else of the boot', () => {
    if (!build) return;
    const root = pathToFileURL(`${build}/`).href;
    const mapped = mapBoot(boot(POLICY.module, { lr: 1 }), SRC, root);
    expect(mapped?.roles[0]).toEqual({
      name: 'r',
      module: `${root}algorithms/roles/policy.js`,
      exportName: 'create',
      args: { lr: 1 },
    });
    expect(existsSync(new URL(mapped!.roles[0].module))).toBe(true);
    expect(mapped?.runtime).toEqual({ backend: 'cpu' });
  });

  it('keeps the sources for a role outside src/, an argument naming a .ts module, or a missing twin', () => {
    const root = pathToFileURL(`${build ?? '/nonexistent'}/`).href;
    expect(mapBoot(boot(ECHO.module), SRC, root)).toBeUndefined();
    expect(
      mapBoot(boot(POLICY.module, { nested: [{ lossModule: 'file:///x/loss.ts' }] }), SRC, root),
    ).toBeUndefined();
    expect(mapBoot(boot(`${SRC}no/such/role.ts`), SRC, root)).toBeUndefined();
  });

  it('starts from the sources with tsx unless the environment names a build', () => {
    const fromSources = hostStart(boot(POLICY.module), 'worker-entry', {});
    expect(fromSources.needsLoader).toBe(true);
    expect(fromSources.entry.href).toBe(`${SRC}actors/worker-entry.ts`);
    expect(fromSources.boot.roles[0].module).toBe(POLICY.module);
    if (!build) return;
    const built = hostStart(boot(POLICY.module), 'process-entry', { [SOURCES_BUILD_ENV]: build });
    expect(built.needsLoader).toBe(false);
    expect(built.entry.href).toBe(pathToFileURL(`${build}/actors/process-entry.js`).href);
    expect(existsSync(built.entry)).toBe(true);
    // A test's own role keeps the whole host on the sources.
    expect(
      hostStart(boot(ECHO.module), 'worker-entry', { [SOURCES_BUILD_ENV]: build }).needsLoader,
    ).toBe(true);
  });
});
