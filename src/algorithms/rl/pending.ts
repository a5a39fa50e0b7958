import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../../errors.js';
import type { GeneratedBatch } from '../roles/generator.js';

/**
 * With `rollout.offPolicy` the batch of step s + 1 is sampled during step s, with the weights
 * before step s's update. A checkpoint after step s keeps that batch (the rollout frame beside
 * the rest as JSON), so that a resumed run trains step s + 1 on exactly it: sampled again after
 * the resume, with the newer weights, it made the resumed run diverge from the uninterrupted one.
 */
export interface PendingBatch {
  readonly batch: GeneratedBatch;
  /** The policy step whose weights sampled it (`rollout/weights_version`). */
  readonly weightsStep: number;
}

const FRAME = 'pending-rollout.bin';
const META = 'pending-rollout.json';

/** Write `p` into the checkpoint directory `dir`. */
export async function savePending(dir: string, p: PendingBatch): Promise<void> {
  const { frame, responses, logprobs, stopped } = p.batch;
  await writeFile(join(dir, FRAME), new Uint8Array(frame));
  // Log-probs are float32 values in JS numbers: JSON writes them back exactly.
  const meta = { responses, logprobs, stopped, weightsStep: p.weightsStep };
  await writeFile(join(dir, META), JSON.stringify(meta));
}

/**
 * The pending batch of the checkpoint `dir`, or undefined when it has none. The batch's
 * `version` is `version`: a number the caller maps to `weightsStep`.
 */
export async function loadPending(dir: string, version: number): Promise<PendingBatch | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, META), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const meta = JSON.parse(text) as Omit<GeneratedBatch, 'frame' | 'version'> & {
      weightsStep: number;
    };
    const bytes = await readFile(join(dir, FRAME));
    const frame = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const { weightsStep, ...rest } = meta;
    return { batch: { ...rest, frame: frame as ArrayBuffer, version }, weightsStep };
  } catch (e) {
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${join(dir, META)}: cannot read the batch generated ahead (rollout.offPolicy): ${(e as Error).message}`,
      { cause: e, details: { file: join(dir, META) } },
    );
  }
}
