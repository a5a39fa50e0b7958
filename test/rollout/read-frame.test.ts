import { describe, expect, it } from 'vitest';
import {
  EXPERIENCE_FRAME,
  encodeExperience,
  encodeFrame,
  encodeRollout,
  FRAME_VERSION,
  type Frame,
  ROLLOUT_FRAME,
  readFrame,
} from '../../src/rollout/index.js';
import { thrown } from '../helpers/thrown.js';
import { makeExperience } from './fixtures.js';

/** What a reader of any frame does: switch on the kind, the payload typed by it (no casts). */
function summary(f: Frame): string {
  switch (f.kind) {
    case 'experience':
      return `experience of ${f.payload.shape.batch} rows, reward[0] ${f.payload.rewards[0]}`;
    case 'rollout':
      return `rollout of ${f.payload.shape.batch} rows, prompt ${f.payload.promptLength}`;
  }
}

describe('readFrame: the Frame union', () => {
  const e = makeExperience({ batch: 3, promptLength: 4, actions: 5 });
  const layout = {
    sequences: e.sequences,
    attentionMask: e.attentionMask,
    actionMask: e.actionMask,
    promptLength: e.promptLength,
    shape: e.shape,
  };

  it('reads each kind Troupe sends with its payload checked and typed', () => {
    const x = readFrame(encodeExperience(e));
    expect(x.kind).toBe(EXPERIENCE_FRAME);
    expect(x.version).toBe(FRAME_VERSION);
    expect(summary(x)).toBe(`experience of 3 rows, reward[0] ${e.rewards[0]}`);
    const r = readFrame(encodeRollout(layout));
    expect(r.kind).toBe(ROLLOUT_FRAME);
    expect(summary(r)).toBe('rollout of 3 rows, prompt 4');
    if (r.kind !== 'rollout') throw new Error('unreachable');
    expect(Array.from(r.payload.sequences)).toEqual(Array.from(e.sequences));
  });

  it('refuses a kind Troupe does not send, naming it and the known kinds', () => {
    const err = thrown(() => readFrame(encodeFrame('weights', {})));
    expect(err.code).toBe('BAD_FRAME');
    expect(err.message).toBe("Unknown frame kind 'weights'; Troupe sends experience, rollout");
    expect(err.details).toMatchObject({ kind: 'weights', known: ['experience', 'rollout'] });
    // An inherited property name is no kind either.
    expect(thrown(() => readFrame(encodeFrame('toString', {}))).code).toBe('BAD_FRAME');
  });

  it("checks a known kind's payload as its own decoder does", () => {
    const extra = thrown(() => readFrame(encodeFrame('rollout', { ...layout, values: e.values })));
    expect(extra.message).toBe("A 'rollout' frame has unknown fields: values");
    const notObject = thrown(() => readFrame(encodeFrame('experience', 3)));
    expect(notObject.message).toBe("An 'experience' frame holds an object, got 3");
    const bad = thrown(() =>
      readFrame(encodeFrame('rollout', { ...layout, actionMask: new Uint8Array(2) })),
    );
    expect(bad.code).toBe('BAD_FRAME');
    expect(bad.message).toContain("A 'rollout' frame does not hold a valid rollout:");
    expect(bad.message).toContain('Experience.actionMask');
  });
});
