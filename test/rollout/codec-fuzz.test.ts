import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { TroupeError } from '../../src/errors.js';
import {
  decodeExperience,
  decodeFrame,
  decodeRollout,
  encodeExperience,
  encodeFrame,
  encodeRollout,
} from '../../src/rollout/index.js';
import { makeExperience } from './fixtures.js';

/**
 * The frame decoders' error paths under random input: every malformed frame must come back as a
 * BAD_FRAME TroupeError (never a TypeError, RangeError or a hang), whatever the bytes. Frames are
 * untrusted: they cross threads, and a worker may be buggy.
 *
 * FRAMES frames per run (TROUPE_FUZZ_FRAMES overrides it; 200,000 were run once by hand, see the
 * README's error section). Seeded: a failure names a case that reproduces.
 */
const FRAMES = Number(process.env.TROUPE_FUZZ_FRAMES ?? 10_000);

/** xorshift32: a fixed stream of 32-bit draws. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  return {
    next,
    int: (n: number) => next() % n,
    pick: <T>(xs: readonly T[]): T => xs[next() % xs.length],
  };
}
type Rng = ReturnType<typeof rng>;

/** msgpack bytes that decode to awkward scalars: int64, uint64, float32, ext types, NaN, … */
const AWKWARD_BYTES: readonly number[][] = [
  [0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], // int64 −2⁶³
  [0xd3, 0, 0, 0, 1, 0, 0, 0, 0], // int64 2³² (a BigInt in msgpackr)
  [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // uint64 max
  [0xca, 0x7f, 0xc0, 0, 0], // float32 NaN
  [0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0], // float64 +Inf
  [0xd6, 0xff, 0, 0, 0, 1], // timestamp ext −1 (a Date)
  [0xd4, 0x01, 0x00], // unknown fixext 1
  [0xc7, 0x02, 0x74, 0x03, 0x00], // typed-array ext 't' with a ragged body
  [0xc7, 0x05, 0x74, 0x07, 1, 2, 3, 4], // 't', unknown array type
  [0xc7, 0x01, 0x65, 0x90], // error ext 'e'
  [0xc7, 0x02, 0x78, 0xa1, 0x28], // regexp ext 'x' of "(": a SyntaxError inside msgpackr
  [0xc0], // nil
  [0xc3], // true
  [0xdc, 0xff, 0xff], // array16 claiming 65,535 items
  [0xdf, 0x7f, 0xff, 0xff, 0xff], // map32 claiming 2³¹ entries
  [0xdb, 0x7f, 0xff, 0xff, 0xff], // str32 claiming 2 GiB
];

/** A random JSON-ish value with BigInts, typed arrays and odd objects mixed in. */
function randomValue(r: Rng, depth = 0): unknown {
  const choices = depth > 3 ? 7 : 10;
  switch (r.int(choices)) {
    case 0:
      return r.int(2) ? BigInt(r.next()) * 2n ** 32n : -(2n ** 63n);
    case 1:
      return r.pick([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 40, -(2 ** 31)]);
    case 2:
      return r.pick(['', 'x', 'experience', 'rollout', 'a'.repeat(300)]);
    case 3:
      return r.pick([null, true, false, undefined]);
    case 4:
      return new (r.pick([Float32Array, Int32Array, Uint8Array, Float64Array, Uint16Array]))(
        r.int(12),
      );
    case 5:
      return new Date(r.next());
    case 6:
      return r.pick([new Map([[1, 2]]), new Set([1]), new Error('e'), /re/g]);
    case 7:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const keys = ['v', 'kind', 'payload', 'shape', 'batch', 'length', 'actions', 'info'];
      for (let i = r.int(5); i > 0; i--) o[r.pick(keys)] = randomValue(r, depth + 1);
      return o;
    }
  }
}

/** A valid frame of one of the kinds the decoders read. */
function validFrame(r: Rng): Uint8Array {
  const e = makeExperience({
    batch: 1 + r.int(3),
    promptLength: 1 + r.int(4),
    actions: 1 + r.int(5),
    optional: r.int(2) === 0,
  });
  switch (r.int(3)) {
    case 0:
      return new Uint8Array(encodeExperience(e));
    case 1:
      return new Uint8Array(
        encodeRollout({
          sequences: e.sequences,
          attentionMask: e.attentionMask,
          actionMask: e.actionMask,
          promptLength: e.promptLength,
          shape: e.shape,
        }),
      );
    default:
      return new Uint8Array(encodeFrame('x', { n: r.int(100), s: 'text', a: e.rewards }));
  }
}

const raw = new Packr({ moreTypes: true, useRecords: false });

/** One malformed (or, by chance, well-formed) input: a valid frame mutated one of several ways. */
function mutant(r: Rng): Uint8Array {
  const f = validFrame(r);
  switch (r.int(8)) {
    case 0: {
      // flip a few bytes
      const out = f.slice();
      for (let k = 1 + r.int(4); k > 0; k--) out[r.int(out.length)] ^= 1 + r.int(255);
      return out;
    }
    case 1:
      return f.slice(0, r.int(f.length)); // truncated
    case 2: {
      // awkward msgpack bytes spliced in at a random place
      const at = r.int(f.length);
      return Uint8Array.from([...f.slice(0, at), ...r.pick(AWKWARD_BYTES), ...f.slice(at)]);
    }
    case 3:
      return Uint8Array.from(r.pick(AWKWARD_BYTES)); // a top-level awkward value
    case 4:
      return Uint8Array.from({ length: 1 + r.int(64) }, () => r.int(256)); // noise
    case 5: {
      // a frame whose fields are random values
      const frame: Record<string, unknown> = {
        v: r.int(3) ? 1 : randomValue(r),
        kind: r.int(2) ? r.pick(['experience', 'rollout']) : randomValue(r),
        payload: randomValue(r),
      };
      return raw.pack(frame);
    }
    case 6: {
      // a valid experience with one field replaced by a random value
      const e = makeExperience({ batch: 1 + r.int(3) }) as unknown as Record<string, unknown>;
      const keys = [...Object.keys(e), 'shape.batch', 'shape.length', 'info.x'];
      const key = r.pick(keys);
      const [a, b] = key.split('.');
      if (b) e[a] = { ...(e[a] as object), [b]: randomValue(r) };
      else e[a] = randomValue(r);
      return raw.pack({ v: 1, kind: r.pick(['experience', 'rollout']), payload: e });
    }
    default:
      return raw.pack(randomValue(r)); // any value at all
  }
}

/** Calls `decode`; a throw must be BAD_FRAME. Returns a description of a wrong throw, or ''. */
function wrongThrow(decode: (b: Uint8Array) => unknown, bytes: Uint8Array): string {
  try {
    decode(bytes);
    return '';
  } catch (e) {
    if (e instanceof TroupeError && e.code === 'BAD_FRAME') {
      JSON.stringify(e.details); // details are plain data, safe to log and send
      return '';
    }
    return `${(e as Error)?.constructor?.name} ${(e as TroupeError).code ?? ''}: ${(e as Error)?.message}`;
  }
}

describe('frame decoders under fuzzed input', () => {
  it('a top-level msgpack int64 or uint64 is BAD_FRAME, not a TypeError from JSON.stringify', () => {
    for (const bytes of AWKWARD_BYTES.slice(0, 3)) {
      let err: unknown;
      try {
        decodeFrame(Uint8Array.from(bytes));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TroupeError);
      expect((err as TroupeError).code).toBe('BAD_FRAME');
      expect((err as TroupeError).message).toMatch(/got -?\d+n \(an int64\)/);
    }
    const v64 = raw.pack({ v: 2n ** 40n, kind: 'x', payload: 1 });
    let err: TroupeError | undefined;
    try {
      decodeFrame(v64);
    } catch (e) {
      err = e as TroupeError;
    }
    expect(err?.code).toBe('BAD_FRAME');
    expect(err?.message).toContain('Frame version 1099511627776n (an int64) is not supported');
    expect(err?.details['got']).toBe('1099511627776');
  });

  it('a rollout frame with fields a layout lacks, or a shape its arrays do not have, is BAD_FRAME', () => {
    const e = makeExperience();
    const layout = {
      sequences: e.sequences,
      attentionMask: e.attentionMask,
      actionMask: e.actionMask,
      promptLength: e.promptLength,
      shape: e.shape,
    };
    const codeAndMessage = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return [(err as TroupeError).code, (err as Error).message];
      }
      return [];
    };
    expect(
      codeAndMessage(() => decodeRollout(encodeFrame('rollout', { ...layout, values: e.values }))),
    ).toEqual(['BAD_FRAME', "A 'rollout' frame has unknown fields: values"]);
    // 2³⁰ rows × 2¹⁰ actions claimed by a frame of a few bytes: refused at actionMask, without
    // allocating the stand-in arrays of that size first.
    const huge = { batch: 2 ** 30, length: 2 ** 10 + 4, actions: 2 ** 10 };
    const t0 = performance.now();
    const [code, message] = codeAndMessage(() =>
      decodeRollout(encodeFrame('rollout', { ...layout, shape: huge })),
    );
    expect(performance.now() - t0).toBeLessThan(200);
    expect(code).toBe('BAD_FRAME');
    expect(message).toContain('Experience.sequences: expected Int32Array of length');
  });

  it(`${FRAMES} mutated frames: every throw of every decoder is BAD_FRAME`, () => {
    const r = rng(20250715);
    const wrong: string[] = [];
    let accepted = 0;
    for (let i = 0; i < FRAMES && wrong.length < 5; i++) {
      const bytes = mutant(r);
      for (const [name, decode] of [
        ['decodeFrame', decodeFrame],
        ['decodeExperience', decodeExperience],
        ['decodeRollout', decodeRollout],
      ] as const) {
        const w = wrongThrow(decode, bytes);
        if (w) wrong.push(`case ${i}, ${name}: ${w}`);
      }
      try {
        decodeFrame(bytes);
        accepted++;
      } catch {}
    }
    expect(wrong).toEqual([]);
    // The mutants reach past the msgpack layer: many still decode as frames.
    expect(accepted).toBeGreaterThan(FRAMES / 10);
  });
});
