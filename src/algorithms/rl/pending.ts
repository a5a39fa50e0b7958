import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TroupeError } from '../../errors.js';
import { writeFileAtomic } from '../../util/atomic.js';
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

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * Write `p` into the checkpoint directory `dir`. Each file is written whole or not at all
 * (writeFileAtomic), the frame first and the JSON last, naming the frame's length and SHA-256:
 * a save that fails between the two leaves a pair that `loadPending` refuses, never reads.
 */
export async function savePending(dir: string, p: PendingBatch): Promise<void> {
  const { frame, responses, logprobs, stopped } = p.batch;
  const bytes = new Uint8Array(frame);
  await writeFileAtomic(join(dir, FRAME), bytes);
  // Log-probs are float32 values in JS numbers: JSON writes them back exactly.
  const meta = {
    responses,
    logprobs,
    stopped,
    weightsStep: p.weightsStep,
    frameBytes: bytes.byteLength,
    frameSha256: sha256(bytes),
  };
  await writeFileAtomic(join(dir, META), JSON.stringify(meta));
}

/**
 * The pending batch of the checkpoint `dir`, or undefined when it has none. The batch's
 * `version` is `version`: a number the caller maps to `weightsStep`. A frame that is not the
 * one its JSON names is refused (BAD_CHECKPOINT); a JSON of an older save, without the frame's
 * length and hash, is read as it was written.
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
      frameBytes?: number;
      frameSha256?: string;
    };
    const bytes = await readFile(join(dir, FRAME));
    const { weightsStep, frameBytes, frameSha256, ...rest } = meta;
    if (frameBytes !== undefined && frameBytes !== bytes.byteLength) {
      throw new Error(`${FRAME} has ${bytes.byteLength} bytes, the batch ${frameBytes}`);
    }
    if (frameSha256 !== undefined && frameSha256 !== sha256(bytes)) {
      throw new Error(`${FRAME} is not the frame of this batch (its SHA-256 differs)`);
    }
    const frame = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    return { batch: { ...rest, frame: frame as ArrayBuffer, version }, weightsStep };
  } catch (e) {
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${join(dir, META)}: cannot read the batch generated ahead (rollout.offPolicy): ${(e as Error).message}`,
      { cause: e, details: { file: join(dir, META) } },
    );
  }
}
