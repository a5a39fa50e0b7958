import { TroupeError } from '../../errors.js';
import type { CausalLM } from '../../policy/model/causal-lm.js';

/*
 * Models this thread's roles hold, by actor name, for a role colocated with one of them that
 * computes with the very same tensors: a generator colocated with the policy samples with the
 * policy's own weights, so publishing copies nothing and there is nothing to sync. Module state
 * is per thread (each worker thread imports its own copy of this module), so a held model
 * never crosses a thread; a role on another thread cannot find it and is told so.
 */

/** A model held by a role, and how many times its owner has published it. */
export interface HeldModel {
  readonly model: CausalLM;
  /** Publishes so far (0: the start weights); the owner counts one per `publish`. */
  readonly version: number;
}

const held = new Map<string, { model: CausalLM; version: number }>();

/** Hold `model` under `actor` for colocated roles; returns the handle its owner publishes with. */
export function holdModel(actor: string, model: CausalLM): { publish(): number } {
  const entry = { model, version: 0 };
  held.set(actor, entry);
  return { publish: () => ++entry.version };
}

/** The model `actor` holds in this thread, for `by` (its name for the error). */
export function heldModel(actor: string, by: string): HeldModel {
  const entry = held.get(actor);
  if (!entry) {
    const here = [...held.keys()];
    throw new TroupeError(
      'BAD_TOPOLOGY',
      `${by}: shares the weights of '${actor}', which holds no model in this thread (${here.length > 0 ? `held here: ${here.join(', ')}` : 'none held here'}); colocate ${by} with '${actor}' (actors.${by}.colocateWith: ${actor})`,
      { details: { actor: by, sharesWith: actor } },
    );
  }
  return entry;
}

/** Stop holding `actor`'s model (its role is stopped). */
export function releaseModel(actor: string): void {
  held.delete(actor);
}
