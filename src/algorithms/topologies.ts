import type { ActorAlgorithm } from '../config/actors.js';
import { type PlacedConfig, type ResolvedPlacement, resolvePlacement } from './launch.js';
import { LM_TOPOLOGY } from './lm.js';
import { DPO_TOPOLOGY, RM_TOPOLOGY } from './preference.js';
import { RL_TOPOLOGY } from './rl.js';

/** Each algorithm's topology (the data its trainer launches), by algorithm name. */
export const TOPOLOGIES = {
  pretrain: LM_TOPOLOGY,
  sft: LM_TOPOLOGY,
  rm: RM_TOPOLOGY,
  dpo: DPO_TOPOLOGY,
  ppo: RL_TOPOLOGY,
  grpo: RL_TOPOLOGY,
  rloo: RL_TOPOLOGY,
  reinforce: RL_TOPOLOGY,
} as const satisfies Record<ActorAlgorithm, unknown>;

/** Where the actors of a run of config `c` will run (what `troupe config show` prints). */
export function placementOf(c: PlacedConfig): ResolvedPlacement {
  // Each topology is typed by its own algorithm's config, which `c` is for `c.algorithm`.
  return resolvePlacement(TOPOLOGIES[c.algorithm] as never, c as never);
}
