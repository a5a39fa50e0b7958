import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tsxLoader } from '../../src/actors/spawn.js';
import { loadPending, type PendingBatch, savePending } from '../../src/algorithms/rl/pending.js';

/**
 * The batch an off-policy run sampled ahead, as a checkpoint keeps it. A save that fails
 * part-way (here: a child process under a 64 KiB file-size limit, `ulimit -f`) leaves either the
 * previous batch whole or a pair the resume refuses, never a partial frame read as a batch.
 */
const CHILD = fileURLToPath(new URL('./fixtures/save-pending-child.ts', import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-pending-'));

function batch(bytes: number, fill: number): PendingBatch {
  return {
    batch: {
      frame: new Uint8Array(bytes).fill(fill).buffer,
      responses: [[1, 2]],
      logprobs: [[-0.5, -0.25]],
      stopped: [true],
      version: 0,
    },
    weightsStep: fill,
  };
}

/** A save in a child limited to 64 KiB per file: `bytes` of frame, a response of `tokens`. */
function failingSave(dir: string, bytes: number, fill: number, tokens: number) {
  const r = spawnSync(
    'bash',
    [
      '-c',
      `ulimit -f 64; exec "${process.execPath}" --import "${tsxLoader()}" "${CHILD}" "$@"`,
      'save',
      dir,
      String(bytes),
      String(fill),
      String(tokens),
    ],
    { encoding: 'utf8' },
  );
  expect(r.status === 0 && r.signal === null).toBe(false); // the save did fail
}

const bytesOf = (p: PendingBatch | undefined) => [...new Uint8Array(p?.batch.frame ?? [])];

describe('rl/pending: the batch sampled ahead, in a checkpoint', () => {
  it('comes back exactly as saved', async () => {
    const dir = tmp();
    expect(await loadPending(dir, 3)).toBeUndefined();
    await savePending(dir, batch(1024, 7));
    const back = await loadPending(dir, 3);
    expect(back).toMatchObject({ weightsStep: 7, batch: { version: 3, stopped: [true] } });
    expect(back?.batch.responses).toEqual([[1, 2]]);
    expect(back?.batch.logprobs).toEqual([[-0.5, -0.25]]);
    expect(bytesOf(back)).toEqual(new Array(1024).fill(7));
  });

  it('a save that fails writing the frame leaves no frame file: nothing, or the previous batch whole', async () => {
    const fresh = tmp();
    failingSave(fresh, 1 << 20, 9, 2);
    expect(existsSync(join(fresh, 'pending-rollout.bin'))).toBe(false);
    expect(await loadPending(fresh, 0)).toBeUndefined();

    const saved = tmp();
    await savePending(saved, batch(1024, 7));
    failingSave(saved, 1 << 20, 9, 2);
    const back = await loadPending(saved, 0);
    expect(back?.weightsStep).toBe(7);
    expect(bytesOf(back)).toEqual(new Array(1024).fill(7));
    expect(
      readdirSync(saved)
        .filter((f) => !f.includes('.tmp-'))
        .sort(),
    ).toEqual(['pending-rollout.bin', 'pending-rollout.json']);
  });

  it('a save that fails after the frame, writing its JSON, leaves a pair the resume refuses', async () => {
    const dir = tmp();
    await savePending(dir, batch(1024, 7));
    // The new frame (1 KiB) fits; its JSON (a 20 000-token response) passes the limit.
    failingSave(dir, 1024, 9, 20_000);
    await expect(loadPending(dir, 0)).rejects.toMatchObject({
      code: 'BAD_CHECKPOINT',
      message: expect.stringMatching(/pending-rollout\.json: .*not the frame of this batch/),
    });
  });
});
