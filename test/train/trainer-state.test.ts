import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import {
  readTrainerState,
  TRAINER_STATE_FILE,
  type TrainerState,
  writeTrainerState,
} from '../../src/train/index.js';
import { rejects } from '../helpers/async.js';
import { tmpDir } from './helpers.js';

const STATE: TrainerState = {
  step: 120,
  epoch: 1,
  loader: { epoch: 1, index: 40 },
  extra: { bestEvalLoss: 1.25, notes: ['a', null] },
};

describe('trainer_state.json', () => {
  it('round-trips, with a version field on disk', async () => {
    const dir = tmpDir();
    await writeTrainerState(dir, STATE);
    expect(await readTrainerState(dir)).toEqual(STATE);
    expect(JSON.parse(readFileSync(join(dir, TRAINER_STATE_FILE), 'utf8')).version).toBe(1);
    await writeTrainerState(dir, { step: 0, epoch: 0, loader: { epoch: 0, index: 0 } });
    expect(await readTrainerState(dir)).toEqual({
      step: 0,
      epoch: 0,
      loader: { epoch: 0, index: 0 },
    });
  });

  it.each([
    [{ step: 1, epoch: 0, loader: { epoch: 0, index: -1 } }, 'loader.index'],
    [{ step: '1', epoch: 0, loader: { epoch: 0, index: 0 } }, 'step'],
    [{ step: 1, epoch: 0.5, loader: { epoch: 0, index: 0 } }, 'epoch'],
    [{ step: 1, epoch: 0 }, 'loader'],
    [{ step: 1, epoch: 0, loader: { epoch: 0, index: 0 }, extra: { a: [1, 2] }, lr: 3 }, 'lr'],
  ])('reading a bad file names the file and the field (%j → %s)', async (body, field) => {
    const dir = tmpDir();
    const file = join(dir, TRAINER_STATE_FILE);
    writeFileSync(file, JSON.stringify({ version: 1, ...body }));
    const e = await rejects(readTrainerState(dir));
    expect(hasCode(e, 'BAD_CHECKPOINT')).toBe(true);
    expect(e.message).toContain(`${file}: field '${field}'`);
    expect((e as { details?: { field?: string } }).details?.field).toBe(field);
  });

  it('a missing file, non-JSON or an unknown version say so', async () => {
    const dir = tmpDir();
    expect((await rejects(readTrainerState(dir))).message).toContain('cannot be read');
    writeFileSync(join(dir, TRAINER_STATE_FILE), '{');
    expect((await rejects(readTrainerState(dir))).message).toContain('is not JSON');
    writeFileSync(join(dir, TRAINER_STATE_FILE), '{"version":2}');
    expect((await rejects(readTrainerState(dir))).message).toContain(
      "field 'version' is 2; this Troupe reads version 1",
    );
  });

  it('writing refuses extra that JSON cannot hold, naming where', async () => {
    const dir = tmpDir();
    const e = await rejects(
      writeTrainerState(dir, { ...STATE, extra: { history: [1, Number.NaN] } }),
    );
    expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
    expect(e.message).toBe("writeTrainerState: field 'extra.history[1]' must be JSON, got NaN.");
    const e2 = await rejects(
      writeTrainerState(dir, { ...STATE, extra: { when: new Date(0) } as never }),
    );
    expect(e2.message).toContain("'extra.when' must be JSON, got a Date object");
  });
});
