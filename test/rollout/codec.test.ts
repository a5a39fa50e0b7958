import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import type { TroupeError } from '../../src/errors.js';
import {
  checkExperience,
  checkWireTensor,
  decodeExperience,
  decodeFrame,
  EXPERIENCE_ARRAY_FIELDS,
  type Experience,
  encodeExperience,
  encodeFrame,
  FRAME_VERSION,
  type WireTensor,
} from '../../src/rollout/index.js';
import { thrown } from '../helpers/thrown.js';
import { makeExperience } from './fixtures.js';

/** float32 values from bit patterns (written through a Uint32Array: no NaN canonicalisation). */
function f32FromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}
const bitsOf = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** -0, the smallest and largest subnormals, the smallest normal, ±Inf, NaNs with payloads. */
const SPECIAL_BITS = [
  0x80000000, 0x00000001, 0x807fffff, 0x00800000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fc00001,
  0xffc12345, 0x7f800001, 0x3f800000, 0x7f7fffff,
];

describe('frames', () => {
  it('round-trips a payload; typed arrays keep their type, bytes and length', () => {
    const payload = {
      name: 'step 3',
      n: 42,
      nested: { list: [1, 'two', null, true] },
      f32: new Float32Array([1.5, -2, 3]),
      i32: new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31)]),
      u8: new Uint8Array([0, 1, 255]),
      u16: new Uint16Array([0, 0x3f80, 0xffff]),
      f64: new Float64Array([Math.PI]),
      empty: new Float32Array(0),
    };
    const frame = decodeFrame(encodeFrame('test', payload));
    expect(frame.kind).toBe('test');
    expect(frame.version).toBe(FRAME_VERSION);
    expect(frame.payload).toEqual(payload);
    const got = frame.payload as typeof payload;
    for (const key of ['f32', 'i32', 'u8', 'u16', 'f64', 'empty'] as const) {
      expect(got[key].constructor).toBe(payload[key].constructor);
    }
  });

  it('keeps float bits exactly: -0, subnormals, ±Inf, NaN payloads', () => {
    const data = f32FromBits(SPECIAL_BITS);
    const got = decodeFrame(encodeFrame('bits', { data })).payload as { data: Float32Array };
    expect(bitsOf(got.data)).toEqual(SPECIAL_BITS);
    expect(Object.is(got.data[0], -0)).toBe(true);
  });

  it('a frame owns an exact-length ArrayBuffer that the next encode does not overwrite', () => {
    const a = encodeFrame('a', { data: new Float32Array([1, 2, 3]) });
    const copy = new Uint8Array(a).slice();
    const reference = new Packr({ moreTypes: true, useRecords: false }).pack({
      v: FRAME_VERSION,
      kind: 'a',
      payload: { data: new Float32Array([1, 2, 3]) },
    });
    expect(a).toBeInstanceOf(ArrayBuffer);
    expect(a.byteLength).toBe(reference.byteLength);
    encodeFrame('b', { data: new Float32Array(1000).fill(7) });
    expect(new Uint8Array(a)).toEqual(copy);
  });

  it('decoded typed arrays are aligned copies that own their buffer, whatever the input alignment', () => {
    const payload = {
      f32: new Float32Array([1, 2, 3]),
      i32: new Int32Array([4, 5]),
      u16: new Uint16Array([6]),
      u8: new Uint8Array([7, 8]),
      buf: Buffer.from([9, 10]), // msgpack `bin`, read as a view unless copyBuffers is set
    };
    const frame = new Uint8Array(encodeFrame('align', payload));
    for (const shift of [0, 1, 2, 3]) {
      const input = new Uint8Array(frame.length + shift).subarray(shift);
      input.set(frame);
      const got = decodeFrame(input).payload as Record<string, Uint8Array>;
      for (const [key, arr] of Object.entries(got)) {
        expect(arr.buffer, key).not.toBe(input.buffer);
        expect(arr.byteOffset, key).toBe(0);
        expect(arr.buffer.byteLength, key).toBe(arr.byteLength);
      }
      input.fill(0xee); // the frame may be reused once decoded
      expect(got['f32']).toEqual(new Float32Array([1, 2, 3]));
      expect(got['buf']).toEqual(new Uint8Array([9, 10]));
    }
  });

  it('wire tensors of every dtype round-trip losslessly', () => {
    const tensors: Record<string, WireTensor> = {
      f: { dtype: 'float32', shape: [2, 3], data: f32FromBits(SPECIAL_BITS.slice(0, 6)) },
      i: { dtype: 'int32', shape: [3], data: new Int32Array([-7, 0, 2 ** 31 - 1]) },
      b: { dtype: 'bool', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) },
      h: { dtype: 'bfloat16', shape: [4], data: new Uint16Array([0x3f80, 0x8000, 0x7fc1, 0x0001]) },
      s: { dtype: 'float32', shape: [], data: new Float32Array([2.5]) },
    };
    const got = decodeFrame(encodeFrame('tensors', tensors)).payload as Record<string, WireTensor>;
    for (const [name, t] of Object.entries(tensors)) {
      checkWireTensor(got[name], name);
      expect(got[name].dtype).toBe(t.dtype);
      expect(got[name].shape).toEqual(t.shape);
      expect(got[name].data.constructor).toBe(t.data.constructor);
      expect(new Uint8Array(got[name].data.buffer)).toEqual(new Uint8Array(t.data.buffer));
    }
  });

  it('checkWireTensor names the tensor and the problem', () => {
    const f = new Float32Array(6);
    expect(() => checkWireTensor({ dtype: 'float16', shape: [6], data: f }, 'w')).toThrow(
      `Tensor 'w': unknown dtype "float16"; known: float32, int32, bool, bfloat16`,
    );
    expect(() => checkWireTensor({ dtype: 'int32', shape: [6], data: f }, 'w')).toThrow(
      `Tensor 'w': dtype int32 needs data as Int32Array, got Float32Array`,
    );
    expect(() => checkWireTensor({ dtype: 'float32', shape: [2, 4], data: f }, 'w')).toThrow(
      `Tensor 'w': shape [2, 4] holds 8 elements, data has 6`,
    );
    expect(() =>
      checkWireTensor({ dtype: 'bool', shape: [2], data: new Uint8Array([1, 2]) }, 'm'),
    ).toThrow(`Tensor 'm': bool element 1 is 2; bools are 0 or 1`);
  });

  it('a frame goes in a transfer list: the sender loses it, the receiver decodes it', async () => {
    const { port1, port2 } = new MessageChannel();
    const frame = encodeFrame('moved', { data: new Float32Array([1, 2, 3]) });
    const received = nextMessage(port2);
    port1.postMessage(frame, [frame]);
    expect(frame.byteLength).toBe(0);
    const got = decodeFrame((await received) as ArrayBuffer);
    expect(got.payload).toEqual({ data: new Float32Array([1, 2, 3]) });
    port1.close();
  });
});

describe('bad frames', () => {
  const raw = (value: unknown) => {
    const b = new Packr({ moreTypes: true, useRecords: false }).pack(value);
    return new Uint8Array(b).slice().buffer;
  };

  it('a version this reader does not know: BAD_FRAME with the version got and those supported', () => {
    const err = thrown(() => decodeFrame(raw({ v: 2, kind: 'x', payload: 1 })));
    expect(err.code).toBe('BAD_FRAME');
    expect(err.message).toContain('Frame version 2 is not supported');
    expect(err.message).toContain('understands version 1');
    expect(err.details).toEqual({ got: 2, supported: [1] });
    expect(thrown(() => decodeFrame(raw({ v: '1', kind: 'x', payload: 1 }))).details['got']).toBe(
      '1',
    );
  });

  it.each([
    ['a number', raw(7), 'Not a frame: expected a map { v, kind, payload }, got 7'],
    [
      'an array',
      raw([1, 'x', 2]),
      'Not a frame: expected a map { v, kind, payload }, got an array of 3',
    ],
    [
      'a map without v',
      raw({ kind: 'x' }),
      'Not a frame: expected a map { v, kind, payload }, got an object',
    ],
    ['a frame with trailing bytes', withTrailingBytes(), 'end of buffer not reached'],
    ['a frame without kind', raw({ v: 1, payload: 1 }), 'Frame v1 has no kind'],
    ['an empty buffer', new ArrayBuffer(0), 'Empty buffer'],
    [
      'truncated msgpack',
      new Uint8Array(encodeFrame('x', { a: new Float32Array(64) })).slice(0, 40).buffer,
      'Not a msgpack frame (40 bytes)',
    ],
    [
      'a string',
      'hello' as unknown as ArrayBuffer,
      'A frame is an ArrayBuffer or Uint8Array, got "hello"',
    ],
  ])('%s is not a frame: BAD_FRAME', (_, input, message) => {
    const err = thrown(() => decodeFrame(input));
    expect(err.code).toBe('BAD_FRAME');
    expect(err.message).toContain(message);
  });
});

describe('experience frames', () => {
  function expectBitExact(got: Experience, want: Experience) {
    expect(got.shape).toEqual(want.shape);
    expect(got.promptLength).toBe(want.promptLength);
    for (const key of EXPERIENCE_ARRAY_FIELDS) {
      const [g, w] = [got[key], want[key]];
      if (w === undefined) {
        expect(key in got, key).toBe(false);
        continue;
      }
      expect(g!.constructor, key).toBe(w.constructor);
      expect(new Uint8Array(g!.buffer, g!.byteOffset, g!.byteLength), key).toEqual(
        new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
      );
    }
    expect(Object.keys(got.info)).toEqual(Object.keys(want.info));
    for (const [k, v] of Object.entries(want.info)) expect(bitsOf(got.info[k])).toEqual(bitsOf(v));
  }

  it('round-trips bit-exactly, with and without the optional fields', () => {
    for (const e of [makeExperience(), makeExperience({ optional: false, batch: 2, actions: 7 })]) {
      const got = decodeExperience(encodeExperience(e));
      expectBitExact(got, e);
      expect(() => checkExperience(got)).not.toThrow();
    }
  });

  it('the codec carries what the validator refuses: non-finite floats arrive bit-exact', () => {
    const e = makeExperience({ batch: 3, actions: 4 }); // 12 actions: the 12 special bit patterns
    const values = f32FromBits(SPECIAL_BITS);
    const weird = {
      ...e,
      values,
      advantages: values,
      rewards: f32FromBits(SPECIAL_BITS.slice(3, 6)),
    };
    const got = decodeExperience(encodeExperience(weird));
    expectBitExact(got, weird);
    expect(bitsOf(got.values!)).toEqual(SPECIAL_BITS);
    expect(() => checkExperience(got)).toThrow('every value must be finite');
  });

  it('encodeExperience checks the layout at the sender', () => {
    const e = makeExperience();
    const err = thrown(() => encodeExperience({ ...e, kl: new Float32Array(3) }));
    expect(err.code).toBe('SHAPE_MISMATCH');
    expect(err.message).toContain('Experience.kl');
  });

  it('decodeExperience refuses other kinds, unknown fields and bad layouts with BAD_FRAME', () => {
    const e = makeExperience();
    const other = thrown(() => decodeExperience(encodeFrame('weights', {})));
    expect(other.code).toBe('BAD_FRAME');
    expect(other.message).toBe("Expected a frame of kind 'experience', got 'weights'");
    const extra = thrown(() =>
      decodeExperience(encodeFrame('experience', { ...e, oldLogProbs: e.rewards })),
    );
    expect(extra.message).toBe("An 'experience' frame has unknown fields: oldLogProbs");
    const bad = thrown(() =>
      decodeExperience(encodeFrame('experience', { ...e, values: new Float64Array(e.values!) })),
    );
    expect(bad.code).toBe('BAD_FRAME');
    expect(bad.message).toContain(
      'Experience.values: expected Float32Array of length 15 [3, 5], got Float64Array',
    );
    expect((bad.cause as TroupeError).code).toBe('BAD_ARGUMENT');
  });
});

function withTrailingBytes(): ArrayBuffer {
  const frame = new Uint8Array(encodeFrame('x', 1));
  const out = new Uint8Array(frame.length + 2);
  out.set(frame);
  return out.buffer;
}

function nextMessage(port: MessagePort): Promise<unknown> {
  return new Promise((resolve) => port.once('message', resolve));
}
