import type { CastMember, PlacedConfig, ResolvedPlacement } from './launch.js';
import { resolvePlacement } from './launch.js';
import { ALGORITHMS, algorithmEntry, LiveMap } from './registry.js';

/** Each algorithm's topology (the data its trainer launches), by algorithm name: a view of ALGORITHMS. */
export const TOPOLOGIES: ReadonlyMap<
  string,
  Readonly<Record<string, CastMember<never, never>>>
> = new LiveMap(() => [...ALGORITHMS].map(([name, a]) => [name, a.topology] as const));

/** Where the actors of a run of config `c` will run (what `troupe config show` prints). */
export function placementOf(c: PlacedConfig): ResolvedPlacement {
  // The entry's topology is typed by its own algorithm's config, which `c` is for `c.algorithm`.
  return resolvePlacement(algorithmEntry(c.algorithm).topology as never, c as never);
}
