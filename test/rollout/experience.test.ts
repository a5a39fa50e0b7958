import { describe, expect, it } from 'vitest';
import {
  checkExperience,
  checkExperienceLayout,
  EXPERIENCE_ARRAY_FIELDS,
  type Experience,
  experienceBytes,
} from '../../src/rollout/index.js';
import { thrown } from '../helpers/thrown.js';
import { makeExperience } from './fixtures.js';

const withField = (e: Experience, patch: Record<string, unknown>) =>
  ({ ...e, ...patch }) as Experience;

describe('checkExperience', () => {
  it('accepts a valid batch, with and without the optional fields', () => {
    expect(() => checkExperience(makeExperience())).not.toThrow();
    expect(() => checkExperience(makeExperience({ optional: false }))).not.toThrow();
    expect(() =>
      checkExperience(makeExperience({ batch: 1, promptLength: 0, actions: 1 })),
    ).not.toThrow();
  });

  it.each(EXPERIENCE_ARRAY_FIELDS.map((f) => [f]))(
    '%s: a wrong length names the field, expected and got',
    (field) => {
      const e = makeExperience();
      const good = e[field]!;
      const short = new (good.constructor as Float32ArrayConstructor)(good.length - 1);
      const err = thrown(() => checkExperienceLayout(withField(e, { [field]: short })));
      expect(err.code).toBe('SHAPE_MISMATCH');
      expect(err.message).toContain(`Experience.${field}`);
      expect(err.message).toContain(`length ${good.length}`);
      expect(err.message).toContain(`got length ${good.length - 1}`);
      expect(err.details['field']).toBe(field);
    },
  );

  it('names the declared shape of a [B, A] field', () => {
    const e = makeExperience({ batch: 3, actions: 5 });
    const err = thrown(() => checkExperience(withField(e, { values: new Float32Array(14) })));
    expect(err.message).toBe(
      'Experience.values: expected Float32Array of length 15 [3, 5], got length 14',
    );
  });

  it('refuses the wrong typed array and a missing required field', () => {
    const e = makeExperience();
    const asFloat = new Float32Array(e.sequences.length);
    expect(thrown(() => checkExperience(withField(e, { sequences: asFloat }))).message).toContain(
      'Experience.sequences: expected Int32Array of length 27 [3, 9], got Float32Array',
    );
    const missing = thrown(() => checkExperience(withField(e, { actionLogProbs: undefined })));
    expect(missing.message).toContain('Experience.actionLogProbs: expected Float32Array');
    expect(missing.message).toContain('got undefined');
  });

  it('refuses a shape where L ≠ P + A, and counts that are not positive integers', () => {
    const e = makeExperience({ promptLength: 4, actions: 5 });
    const err = thrown(() => checkExperience(withField(e, { shape: { ...e.shape, length: 10 } })));
    expect(err.code).toBe('SHAPE_MISMATCH');
    expect(err.message).toBe(
      'Experience.shape.length: expected promptLength + actions = 4 + 5 = 9, got 10',
    );
    expect(
      thrown(() => checkExperience(withField(e, { shape: { ...e.shape, batch: 0 } }))).message,
    ).toBe('Experience.shape.batch: expected an integer ≥ 1, got 0');
    expect(thrown(() => checkExperience(withField(e, { promptLength: 1.5 }))).message).toContain(
      'Experience.promptLength',
    );
  });

  it('masks hold 0 or 1, named by element', () => {
    const e = makeExperience({ actions: 5 });
    const actionMask = e.actionMask.slice();
    actionMask[1 * 5 + 3] = 2;
    const err = thrown(() => checkExperience(withField(e, { actionMask })));
    expect(err.code).toBe('BAD_ARGUMENT');
    expect(err.message).toBe('Experience.actionMask: element [1, 3] is 2; masks hold 0 or 1');
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('refuses %s in a float field, a masked position included', (name, bad) => {
    const e = makeExperience({ actions: 5 });
    const values = e.values!.slice();
    values[2 * 5 + 4] = bad; // row 2's last action is a pad
    expect(thrown(() => checkExperience(withField(e, { values }))).message).toBe(
      `Experience.values: element [2, 4] is ${name}; every value must be finite`,
    );
    const rewards = e.rewards.slice();
    rewards[1] = bad;
    expect(thrown(() => checkExperience(withField(e, { rewards }))).message).toBe(
      `Experience.rewards: element [1] is ${name}; every value must be finite`,
    );
  });

  it('checks info: one finite float per sample', () => {
    const e = makeExperience({ batch: 3 });
    const short = thrown(() =>
      checkExperience(withField(e, { info: { len: new Float32Array(2) } })),
    );
    expect(short.message).toBe(
      'Experience.info.len: expected Float32Array of length 3 [3], got length 2',
    );
    const nan = thrown(() =>
      checkExperience(withField(e, { info: { len: new Float32Array([1, Number.NaN, 2]) } })),
    );
    expect(nan.message).toBe('Experience.info.len: element [1] is NaN; every value must be finite');
  });

  it('refuses negative token ids', () => {
    const e = makeExperience({ promptLength: 4, actions: 5 });
    const sequences = e.sequences.slice();
    sequences[9 + 2] = -1;
    expect(thrown(() => checkExperience(withField(e, { sequences }))).message).toBe(
      'Experience.sequences: element [1, 2] is -1; token ids are ≥ 0',
    );
  });

  it('checks the padding: prompts left-padded, responses right-padded, actions on real tokens', () => {
    const e = makeExperience({ batch: 3, promptLength: 4, actions: 5 });
    const L = 9;
    const promptHole = e.attentionMask.slice();
    promptHole[0 * L + 2] = 0; // row 0: real, real, pad, real
    expect(
      thrown(() => checkExperience(withField(e, { attentionMask: promptHole }))).message,
    ).toContain('row 0 has a pad at prompt position 2 after a real token; prompts are left-padded');
    const responseHole = e.attentionMask.slice();
    responseHole[1 * L + 4 + 1] = 0; // row 1: response token 1 is a pad, 2 is real
    expect(
      thrown(() => checkExperience(withField(e, { attentionMask: responseHole }))).message,
    ).toContain(
      'row 1 has a real token at response position 2 after a pad; responses are right-padded',
    );
    const actionOnPad = e.actionMask.slice();
    actionOnPad[2 * 5 + 4] = 1; // row 2 has 3 response tokens
    expect(thrown(() => checkExperience(withField(e, { actionMask: actionOnPad }))).message).toBe(
      'Experience.actionMask: element [2, 4] is 1 but attentionMask[2, 8] is 0; only real tokens are actions',
    );
  });

  it('experienceBytes counts every array, info included', () => {
    const e = makeExperience({ batch: 3, promptLength: 4, actions: 5 });
    // sequences 27·4 + masks 27 + 15 + 6 float [B, A] fields 15·4 + rewards 3·4 + 2 info 3·4
    expect(experienceBytes(e)).toBe(108 + 27 + 15 + 6 * 60 + 12 + 24);
    expect(experienceBytes(makeExperience({ optional: false }))).toBe(108 + 27 + 15 + 60 + 12 + 24);
  });
});
