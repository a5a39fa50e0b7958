import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const DIST = new URL('../../dist/index.js', import.meta.url);

describe('the built package', () => {
  it('spawns actors from dist/ (plain JavaScript worker entry, no TypeScript loader)', async () => {
    expect(existsSync(DIST), 'dist/ is missing: run `npm run build` (npm test does)').toBe(true);
    const { Supervisor } = (await import(DIST.href)) as typeof import('../../src/index.js');
    const sup = new Supervisor();
    try {
      const role = {
        module: new URL('./fixtures/js-role.mjs', import.meta.url).href,
        exportName: 'createCounter',
      };
      const a = await sup.spawn<
        { next(): number; where(): { threadId: number; backend: string; name: string } },
        { start: number }
      >({ name: 'counter', role, args: { start: 41 } }, { runtime: { backend: 'cpu' } });
      expect(await a.call.next()).toBe(42);
      expect(await a.call.where()).toMatchObject({ backend: 'cpu', name: 'counter' });
      // The same role in a child process (dist/actors/process-entry.js, no loader either).
      const p = await sup.spawn<{ next(): number; where(): { pid: number } }, { start: number }>(
        { name: 'counter-process', role, args: { start: 1 } },
        { runtime: { backend: 'cpu' }, isolation: 'process' },
      );
      expect(await p.call.next()).toBe(2);
      expect(p.pid).not.toBe(process.pid);
      expect((await p.call.where()).pid).toBe(p.pid);
    } finally {
      await sup.shutdown();
    }
  });
});
