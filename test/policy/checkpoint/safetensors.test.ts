import { mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TroupeError } from '../../../src/errors.js';
import { RandomStream } from '../../../src/kernels/random.js';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  type Tensor32,
  writeSafetensors,
} from '../../../src/policy/checkpoint/index.js';

const f32 = (...bitPatterns: number[]) => new Float32Array(new Uint32Array(bitPatterns).buffer);
const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-st-'));

/** A safetensors file from a header (object or raw JSON text) and data bytes, unpadded. */
function fileOf(header: unknown, data: Uint8Array | number, pad = 0): Uint8Array {
  const json = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(json + ' '.repeat(pad));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** Slow reference: the nearest bfloat16 by comparing both neighbours in float64, ties to even. */
function bf16Reference(bits: number): number {
  const x = f32(bits)[0];
  if (Number.isNaN(x)) return -1; // checked separately: any NaN
  const lo = bits >>> 16;
  const hi = lo + 1;
  const vLo = f32((lo << 16) >>> 0)[0];
  // Past the largest finite bf16, the next "neighbour" is 2^128: IEEE rounds to Inf from there.
  const vHi = (hi & 0x7f80) === 0x7f80 ? Math.sign(x) * 2 ** 128 : f32((hi << 16) >>> 0)[0];
  const dLo = Math.abs(x - vLo);
  const dHi = Math.abs(vHi - x);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi & 0xffff;
  return (lo & 1) === 0 ? lo : hi & 0xffff;
}

describe('safetensors F32', () => {
  const special = f32(
    0x7fc00000, // NaN
    0x7f800001, // signalling NaN payload
    0xffc00123, // negative NaN with payload
    0x7f800000, // +Inf
    0xff800000, // -Inf
    0x80000000, // -0
    0x00000001, // smallest subnormal
    0x807fffff, // largest negative subnormal
    0x7f7fffff, // max
    0x3f800000, // 1
  );
  const tensors = new Map<string, Tensor32>([
    ['special', { shape: [2, 5], data: special }],
    ['scalar', { shape: [], data: f32(0x40490fdb) }],
    ['empty', { shape: [0, 3], data: new Float32Array(0) }],
    [
      'random',
      { shape: [3, 7], data: RandomStream.of({ seed: 1, step: 0, actor: 'test' }).normal(21) },
    ],
  ]);

  it('round trips every bit pattern through bytes and through a file', async () => {
    const viaBytes = parseSafetensors(serializeSafetensors(tensors));
    const path = join(tmp(), 'a.safetensors');
    await writeSafetensors(path, tensors, { metadata: { note: 'hi' } });
    const viaFile = await readSafetensors(path);
    for (const read of [viaBytes, viaFile]) {
      expect([...read.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        expect(read.tensors.get(name)!.shape).toEqual(t.shape);
        expect(bitsOf(read.tensors.get(name)!.data)).toEqual(bitsOf(t.data));
        expect(read.dtypes.get(name)).toBe('F32');
      }
    }
    expect(viaFile.metadata).toEqual({ format: 'pt', note: 'hi' });
  });

  it('pads the header to 8 bytes, writes format pt, and lays tensors out sorted and contiguous', () => {
    const bytes = serializeSafetensors(tensors, { metadata: { step: '3' } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd().length).toBeGreaterThan(n - 8); // at most 7 spaces of padding
    expect(text.slice(text.trimEnd().length)).toMatch(/^ *$/);
    const header = JSON.parse(text);
    expect(header.__metadata__).toEqual({ format: 'pt', step: '3' });
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names).toEqual(['empty', 'random', 'scalar', 'special']);
    let at = 0;
    for (const name of names) {
      expect(header[name].data_offsets[0]).toBe(at);
      at = header[name].data_offsets[1];
    }
    expect(bytes.length).toBe(8 + n + at);
  });

  it('writes the exact layout: u64 LE length, JSON, spaces, little-endian data', () => {
    const bytes = serializeSafetensors(
      new Map([['x', { shape: [2], data: new Float32Array([1, -2]) }]]),
    );
    const json =
      '{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const n = Math.ceil(json.length / 8) * 8;
    const want = [
      ...[n, 0, 0, 0, 0, 0, 0, 0],
      ...Array.from(json, (ch) => ch.charCodeAt(0)),
      ...new Array(n - json.length).fill(0x20),
      ...[0x00, 0x00, 0x80, 0x3f], // 1.0f
      ...[0x00, 0x00, 0x00, 0xc0], // -2.0f
    ];
    expect(Array.from(bytes)).toEqual(want);
  });

  it('reads a hand-written file whose data starts at an unaligned offset', () => {
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const pad = (((1 - (8 + header.length)) % 4) + 4) % 4; // make 8 + N ≡ 1 (mod 4)
    const data = new Uint8Array(f32(0x3f800000, 0xffc00001).buffer);
    const bytes = fileOf(header, data, pad);
    expect((8 + header.length + pad) % 4).toBe(1);
    const read = parseSafetensors(bytes);
    expect(bitsOf(read.tensors.get('a')!.data)).toEqual([0x3f800000, 0xffc00001]);
    expect(read.metadata).toEqual({});
  });

  it('reads only the tensors asked for, and reads headers alone', async () => {
    const path = join(tmp(), 'b.safetensors');
    await writeSafetensors(path, tensors);
    const some = await readSafetensors(path, { only: (n) => n.startsWith('s') });
    expect([...some.tensors.keys()].sort()).toEqual(['scalar', 'special']);
    const header = await readSafetensorsHeader(path);
    expect(header.tensors.get('random')).toMatchObject({ dtype: 'F32', shape: [3, 7] });
    expect(header.dataStart % 8).toBe(0);
  });
});

describe('safetensors BF16 and F16', () => {
  // [f32 bits, bf16 bits]: ties go to the even neighbour.
  const cases: Array<[number, number]> = [
    [0x3f808000, 0x3f80], // tie, even below
    [0x3f818000, 0x3f82], // tie, even above
    [0x3f808001, 0x3f81], // just above half
    [0x3f807fff, 0x3f80], // just below half
    [0x00008000, 0x0000], // subnormal tie
    [0x00018000, 0x0002],
    [0x80000000, 0x8000], // -0
    [0x7f7fffff, 0x7f80], // max f32 rounds to +Inf
    [0x7f800000, 0x7f80],
    [0xff800000, 0xff80],
    [0xbf7fffff, 0xbf80], // carry into the exponent
  ];

  it('rounds to nearest even, matching the slow reference, and keeps NaN a NaN', async () => {
    const randomBits = bitsOf(RandomStream.of({ seed: 2, step: 0, actor: 'test' }).normal(500));
    const all = [...cases.map(([b]) => b), ...randomBits, 0x7f800001, 0xff800001, 0x7fc00000];
    const path = join(tmp(), 'bf16.safetensors');
    await writeSafetensors(path, new Map([['w', { shape: [all.length], data: f32(...all) }]]), {
      dtype: 'BF16',
    });
    const read = await readSafetensors(path);
    expect(read.dtypes.get('w')).toBe('BF16');
    const got = bitsOf(read.tensors.get('w')!.data);
    const file = await readFile(path);
    const start = 8 + Number(file.readBigUInt64LE(0));
    all.forEach((b, i) => {
      const stored = file.readUInt16LE(start + 2 * i);
      expect(got[i]).toBe((stored << 16) >>> 0);
      if (Number.isNaN(f32(b)[0])) expect(Number.isNaN(read.tensors.get('w')!.data[i])).toBe(true);
      else expect(stored, `f32 0x${b.toString(16)}`).toBe(bf16Reference(b));
    });
    cases.forEach(([b, want], i) => {
      expect(got[i] >>> 16, `f32 0x${b.toString(16)}`).toBe(want);
    });
  });

  it('reads F16 bit patterns: normals, subnormals, ±Inf, NaN, -0', () => {
    const halves = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x3555];
    const data = new Uint8Array(new Uint16Array(halves).buffer);
    const header = { h: { dtype: 'F16', shape: [halves.length], data_offsets: [0, data.length] } };
    const got = Array.from(parseSafetensors(fileOf(header, data)).tensors.get('h')!.data);
    expect(got.slice(0, 7)).toEqual([1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity]);
    expect(got[0 + 3]).toBeCloseTo(5.96e-8, 10);
    expect(Number.isNaN(got[7])).toBe(true);
    expect(Object.is(got[8], -0)).toBe(true);
    expect(got[9]).toBe((1 + 0x155 / 1024) * 2 ** -2); // exponent 13, mantissa 0x155
  });

  it('reads integer and bool tensors as float32', () => {
    const i64 = new Uint8Array(new BigInt64Array([-3n, 7n]).buffer);
    const i32 = new Uint8Array(new Int32Array([-5, 9]).buffer);
    const bool = new Uint8Array([1, 0, 2]);
    const data = new Uint8Array([...i64, ...i32, ...bool]);
    const header = {
      a: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      b: { dtype: 'I32', shape: [2], data_offsets: [16, 24] },
      c: { dtype: 'BOOL', shape: [3], data_offsets: [24, 27] },
    };
    const t = parseSafetensors(fileOf(header, data)).tensors;
    expect(Array.from(t.get('a')!.data)).toEqual([-3, 7]);
    expect(Array.from(t.get('b')!.data)).toEqual([-5, 9]);
    expect(Array.from(t.get('c')!.data)).toEqual([1, 0, 1]);
  });
});

describe('safetensors malformed files', () => {
  const SRC = 'bad.safetensors';
  const w = (dtype: string, shape: unknown, offsets: unknown) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const cases: Array<[string, Uint8Array, string[]]> = [
    ['shorter than 8 bytes', new Uint8Array(5), ['shorter than the 8-byte']],
    [
      'header length beyond the file',
      fileOf('{}', 0).map((b, i) => (i === 0 ? 200 : b)),
      ['header length 200'],
    ],
    ['header not JSON', fileOf('{"w": ', 0), ['not UTF-8 JSON']],
    ['header not an object', fileOf('[1, 2]', 0), ['must be a JSON object']],
    [
      'unknown dtype',
      fileOf({ w: w('F17', [1], [0, 4]) }, 4),
      ["tensor 'w'", 'unknown dtype "F17"'],
    ],
    ['negative dim', fileOf({ w: w('F32', [2, -1], [0, 0]) }, 0), ["tensor 'w'", 'shape must be']],
    ['fractional dim', fileOf({ w: w('F32', [1.5], [0, 4]) }, 4), ["tensor 'w'", 'shape must be']],
    [
      'shape not an array',
      fileOf({ w: w('F32', '2', [0, 8]) }, 8),
      ["tensor 'w'", 'shape must be'],
    ],
    [
      'offsets not a pair',
      fileOf({ w: w('F32', [1], [0]) }, 4),
      ["tensor 'w'", 'data_offsets must be [begin, end]'],
    ],
    ['begin after end', fileOf({ w: w('F32', [0], [4, 0]) }, 4), ["tensor 'w'", 'begin > end']],
    ['size not shape·dtype', fileOf({ w: w('F32', [2], [0, 4]) }, 4), ["tensor 'w'", 'needs 8']],
    ['truncated data', fileOf({ w: w('F32', [4], [0, 16]) }, 10), ["tensor 'w'", 'truncated']],
    [
      'overlapping tensors',
      fileOf({ a: w('F32', [2], [0, 8]), b: w('F32', [2], [4, 12]) }, 12),
      ["tensor 'b'", "overlap tensor 'a'"],
    ],
    [
      'gap between tensors',
      fileOf({ a: w('F32', [1], [0, 4]), b: w('F32', [1], [8, 12]) }, 12),
      ["tensor 'b'", 'gap', '[4, 8)'],
    ],
    [
      'bytes after the last tensor',
      fileOf({ a: w('F32', [1], [0, 4]) }, 8),
      ['[4, 8) after the last tensor'],
    ],
    [
      'metadata value not a string',
      fileOf({ __metadata__: { format: 1 } }, 0),
      ['__metadata__.format must be a string'],
    ],
    [
      'metadata not an object',
      fileOf({ __metadata__: 'pt' }, 0),
      ['__metadata__ must be an object'],
    ],
  ];

  it.each(cases)('%s', (_, bytes, fragments) => {
    let err: unknown;
    try {
      parseSafetensors(bytes, SRC);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TroupeError);
    expect((err as TroupeError).code).toBe('BAD_CHECKPOINT');
    expect((err as TroupeError).details.file).toBe(SRC);
    for (const f of [SRC, ...fragments]) expect((err as Error).message).toContain(f);
  });

  it('names the file path when reading from disk, and refuses 8-bit floats clearly', async () => {
    const path = join(tmp(), 'trunc.safetensors');
    writeFileSync(path, fileOf({ w: w('F32', [4], [0, 16]) }, 3));
    await expect(readSafetensors(path)).rejects.toThrow(`${path}: tensor 'w'`);
    await expect(readSafetensors(join(tmp(), 'nope.safetensors'))).rejects.toThrow(
      'cannot open (ENOENT)',
    );
    const f8 = fileOf({ q: w('F8_E4M3', [2], [0, 2]) }, 2);
    expect(() => parseSafetensors(f8, SRC)).toThrow(
      `${SRC}: tensor 'q': dtype F8_E4M3 cannot be read yet`,
    );
  });

  it('refuses to write tensors whose data does not fit their shape', () => {
    const bad = new Map([['w', { shape: [2, 2], data: new Float32Array(3) }]]);
    expect(() => serializeSafetensors(bad)).toThrow(
      "tensor 'w': shape [2, 2] needs 4 float32s, got 3",
    );
  });
});
