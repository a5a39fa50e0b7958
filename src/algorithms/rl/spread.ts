import { shard } from '../../data/batching/shard.js';
import { TroupeError } from '../../errors.js';
import { assembleGeneration } from '../../policy/generate.js';
import { layoutOf, sliceRollout } from '../../rollout/assemble.js';
import { decodeRollout, encodeRollout } from '../../rollout/codec.js';
import type { GeneratedBatch, GeneratorRole } from '../roles/generator.js';
import type { ReferenceRole } from '../roles/reference.js';

/*
 * Work of one batch spread over an actor's instances, one beside each policy replica (veRL's
 * hybrid engine: `actors.generator.colocateWith: policy` and `actors.reference.colocateWith:
 * policy` with policy replicas): each instance samples or scores whole prompt groups, so GRPO's
 * n samples of a prompt stay on one thread and its prompt still runs once there.
 */

/**
 * `groups` groups of `n` rows over `parts` instances: rows [lo, hi) of each, whole groups,
 * contiguous, sizes differing by at most one group; undefined for an instance with none.
 */
export function groupRanges(
  groups: number,
  n: number,
  parts: number,
): (readonly [number, number] | undefined)[] {
  return shard(groups, parts, 1, (lo, hi) => [lo * n, hi * n] as const).map((r) => r[0]);
}

/** What is called of an actor instance (an `Actor`'s `call`, or a role object in this thread). */
interface Calls<R> {
  readonly call: R;
}

/**
 * A scorer's (B, A) outputs of a rollout frame, each of `count` instances scoring its share of
 * whole groups of `n` rows (single rows where the batch is not made of groups: an eval batch),
 * joined in row order. A row's scores depend on its own tokens alone, so the result is one
 * instance's on the whole frame (the reference's bit for bit: rl-spread.test).
 */
export async function scoreSpread(
  frame: ArrayBuffer,
  count: number,
  n: number,
  score: (instance: number, part: ArrayBuffer) => Promise<readonly Float32Array[]>,
): Promise<Float32Array[]> {
  if (count === 1) return [...(await score(0, frame))];
  const layout = decodeRollout(frame);
  const { batch: B, actions: A } = layout.shape;
  const size = B % n === 0 ? n : 1;
  const out: Float32Array[] = [];
  const ranges = groupRanges(B / size, size, count);
  await Promise.all(
    ranges.map(async (range, i) => {
      if (!range) return;
      const [lo, hi] = range;
      const parts = await score(i, encodeRollout(sliceRollout(layout, lo, hi)));
      parts.forEach((p, k) => {
        out[k] ??= new Float32Array(B * A);
        out[k].set(p, lo * A);
      });
    }),
  );
  return out;
}

/** log π_ref of every action of a rollout frame, each reference instance scoring its groups. */
export async function referenceLogprobs(
  refs: readonly Calls<Pick<ReferenceRole, 'actionLogprobs'>>[],
  frame: ArrayBuffer,
  n: number,
): Promise<Float32Array> {
  const [lp] = await scoreSpread(frame, refs.length, n, async (i, part) => [
    await refs[i].call.actionLogprobs(part),
  ]);
  return lp;
}

type GenerateOpts = Parameters<GeneratorRole['generate']>[1];

/**
 * The rows of `prompts` × `n` samples, each generator instance sampling its prompts' rows with
 * its own random stream (`generator/r`: the instances draw independently), joined into one
 * batch as one generator would have laid it out.
 */
export async function generateSpread(
  gens: readonly Calls<Pick<GeneratorRole, 'generate'>>[],
  prompts: readonly (readonly number[])[],
  n: number,
  opts: GenerateOpts & { readonly padTokenId: number },
): Promise<GeneratedBatch> {
  const rowsOf = (ps: readonly (readonly number[])[]) =>
    ps.flatMap((p) => Array.from({ length: n }, () => [...p]));
  if (gens.length === 1) return gens[0].call.generate(rowsOf(prompts), opts);
  const ranges = groupRanges(prompts.length, 1, gens.length);
  const parts = await Promise.all(
    ranges.map((range, r) =>
      range
        ? gens[r].call.generate(rowsOf(prompts.slice(range[0], range[1])), {
            ...opts,
            sampling: opts.sampling && { ...opts.sampling, actor: `${opts.sampling.actor}/${r}` },
          })
        : undefined,
    ),
  );
  const done = parts.filter((p): p is GeneratedBatch => p !== undefined);
  const version = done[0].version;
  if (done.some((p) => p.version !== version)) {
    throw new TroupeError(
      'UNSUPPORTED',
      `rl: the generators sampled one batch with different weights versions (${done.map((p) => p.version).join(', ')})`,
    );
  }
  const responses = done.flatMap((p) => p.responses);
  const logprobs = done.flatMap((p) => p.logprobs);
  const stopped = done.flatMap((p) => p.stopped);
  const g = assembleGeneration(rowsOf(prompts), responses, logprobs, stopped, opts.padTokenId);
  return { frame: encodeRollout(layoutOf(g)), responses, logprobs, stopped, version };
}
