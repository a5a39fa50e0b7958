import { describe, expect, it } from 'vitest';
import { actorSchema } from '../../src/actors/topology.js';
import { placementSchema } from '../../src/config/actors.js';
import { runtimeSchema } from '../../src/config/schema.js';
import {
  AUTO_ORDER,
  BACKEND_CHOICES,
  BACKEND_NAMES,
  BACKENDS,
} from '../../src/kernels/backends/index.js';

/* One list of backend names (kernels/backends/types.ts) feeds the adapters and every schema. */

describe('the backend list', () => {
  it('has one adapter per name, named as its key, in the same order', () => {
    expect([...BACKENDS.keys()]).toEqual([...BACKEND_NAMES]);
    for (const [name, adapter] of BACKENDS) expect(adapter.name).toBe(name);
    for (const name of AUTO_ORDER) expect(BACKEND_NAMES).toContain(name);
  });

  it('is what the config and the topology accept, with auto', () => {
    expect(BACKEND_CHOICES).toEqual(['auto', ...BACKEND_NAMES]);
    for (const backend of BACKEND_CHOICES) {
      expect(runtimeSchema.parse({ backend }).backend).toBe(backend);
      expect(placementSchema.parse({ backend }).backend).toBe(backend);
      expect(actorSchema.parse({ name: 'policy', role: 'policy', backend }).backend).toBe(backend);
    }
    for (const schema of [runtimeSchema, placementSchema]) {
      expect(schema.safeParse({ backend: 'metal' }).success).toBe(false);
    }
    expect(
      actorSchema.safeParse({ name: 'policy', role: 'policy', backend: 'metal' }).success,
    ).toBe(false);
  });
});
