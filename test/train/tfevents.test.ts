import { appendFileSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunDir } from '../../src/train/index.js';
import { crc32c, eventFileName, maskedCrc32c } from '../../src/train/tfevents.js';
import { fakeClock, tmpDir } from './helpers.js';

/*
 * An independent reader of TensorBoard event files, written from the format's description
 * (TFRecord framing; Event, Summary and Summary.Value of tensorflow/core/util/event.proto and
 * framework/summary.proto), sharing no code with src/train/tfevents.ts: its CRC-32C goes bit by
 * bit, and its protobuf parser is generic.
 */

function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;

/** The records of a TFRecord file, each checked against its two masked CRCs. */
function readRecords(file: Uint8Array): Uint8Array[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < file.length) {
    if (file.length - at < 12) throw new Error(`truncated header at byte ${at}`);
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== mask(crc32cBitwise(file.subarray(at, at + 8)))) {
      throw new Error(`bad length CRC at byte ${at}`);
    }
    const data = file.subarray(at + 12, at + 12 + len);
    if (data.length !== len || file.length < at + 16 + len)
      throw new Error(`truncated record at ${at}`);
    if (view.getUint32(at + 12 + len, true) !== mask(crc32cBitwise(data))) {
      throw new Error(`bad data CRC at byte ${at}`);
    }
    out.push(data);
    at += 16 + len;
  }
  return out;
}

type Field = { field: number; wire: number; int?: bigint; bytes?: Uint8Array; raw?: Uint8Array };

/** A protocol buffer message as its fields in order (varint, 64-bit, length-delimited, 32-bit). */
function fields(msg: Uint8Array): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = msg[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (b < 0x80) return v;
    }
  };
  while (i < msg.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    /** The next `n` bytes. */
    const take = (n: number) => {
      const b = msg.subarray(i, i + n);
      i += n;
      return b;
    };
    if (wire === 0) out.push({ field, wire, int: varint() });
    else if (wire === 1) out.push({ field, wire, raw: take(8) });
    else if (wire === 5) out.push({ field, wire, raw: take(4) });
    else if (wire === 2) out.push({ field, wire, bytes: take(Number(varint())) });
    else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface Event {
  wallTime?: number;
  step?: number;
  fileVersion?: string;
  scalars: Array<[string, number]>;
}

function decodeEvent(msg: Uint8Array): Event {
  const e: Event = { scalars: [] };
  const dv = (raw: Uint8Array) => new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (const f of fields(msg)) {
    if (f.field === 1 && f.wire === 1) e.wallTime = dv(f.raw!).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) e.step = Number(f.int);
    else if (f.field === 3 && f.wire === 2) e.fileVersion = new TextDecoder().decode(f.bytes);
    else if (f.field === 5 && f.wire === 2) {
      for (const v of fields(f.bytes!).filter((x) => x.field === 1)) {
        const vf = fields(v.bytes!);
        const tag = new TextDecoder().decode(vf.find((x) => x.field === 1)!.bytes);
        const simple = vf.find((x) => x.field === 2 && x.wire === 5)!;
        e.scalars.push([tag, dv(simple.raw!).getFloat32(0, true)]);
      }
    } else throw new Error(`unexpected Event field ${f.field}`);
  }
  return e;
}

const readEvents = (path: string) => readRecords(readFileSync(path)).map(decodeEvent);

describe('CRC-32C', () => {
  it('has the check value of the standard and TFRecord masking', () => {
    const ascii = new TextEncoder().encode('123456789');
    expect(crc32c(ascii)).toBe(0xe3069283);
    expect(crc32c(ascii)).toBe(crc32cBitwise(ascii));
    expect(maskedCrc32c(ascii)).toBe(mask(0xe3069283));
    const random = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) % 251);
    expect(crc32c(random)).toBe(crc32cBitwise(random));
  });
});

describe('TensorBoard event files of a run directory', () => {
  it('each metrics line is an event: wall time, step, and split/name scalars', async () => {
    const clock = fakeClock(1_796_000_000_000);
    const run = await RunDir.create(tmpDir(), { config: {}, now: clock.now, liveReport: false });
    run.appendMetrics(0, { reward: 0.25, 'reward/exact-match': 0.25 }, { split: 'eval' });
    clock.set(1_796_000_001_500);
    run.appendMetrics(1, { 'actor/loss': -0.0084, kl: Number.NaN, lr: 3e-4 }, { split: 'train' });
    const files = run.eventFiles();
    expect(files.map((f) => basename(f))).toEqual([eventFileName(1_796_000_000)]);
    expect(basename(files[0]!)).toMatch(/^events\.out\.tfevents\.1796000000\..+\.\d+\.troupe$/);
    const events = readEvents(files[0]!);
    expect(events[0]).toEqual({
      wallTime: 1_796_000_000,
      fileVersion: 'brain.Event:2',
      scalars: [],
    });
    expect(events[1]).toEqual({
      wallTime: 1_796_000_000,
      step: 0,
      scalars: [
        ['eval/reward', 0.25],
        ['eval/reward/exact-match', 0.25],
      ],
    });
    expect(events[2]!.wallTime).toBe(1_796_000_001.5);
    expect(events[2]!.step).toBe(1);
    expect(events[2]!.scalars.map(([t]) => t)).toEqual([
      'train/actor/loss',
      'train/kl',
      'train/lr',
    ]);
    // float32, as TensorBoard keeps scalars; NaN kept.
    expect(events[2]!.scalars[0]![1]).toBe(Math.fround(-0.0084));
    expect(events[2]!.scalars[1]![1]).toBeNaN();
    expect(events[2]!.scalars[2]![1]).toBe(Math.fround(3e-4));
    expect(events).toHaveLength(3);
  });

  it('a resume writes the file anew from the metrics kept, dropping a record cut short, then appends', async () => {
    const dir = tmpDir();
    const clock = fakeClock(1_796_000_000_000);
    const run = await RunDir.create(dir, { config: {}, now: clock.now, liveReport: false });
    for (let s = 1; s <= 4; s++) {
      clock.set(1_796_000_000_000 + s * 1000);
      run.appendMetrics(s, { loss: 5 - s }, { split: 'train' });
      if (s === 2) {
        await mkdir(run.checkpointDir(2), { recursive: true });
        await run.commitCheckpoint(2);
      }
    }
    // A crash in the middle of an append: half a record at the end of the file.
    appendFileSync(run.eventFiles()[0]!, Buffer.from([0x20, 0, 0, 0, 0, 0, 0, 0, 1, 2]));
    expect(() => readEvents(run.eventFiles()[0]!)).toThrow('truncated header');

    clock.set(1_796_000_100_000);
    const again = await RunDir.create(dir, {
      config: {},
      resume: true,
      now: clock.now,
      liveReport: false,
    });
    const files = again.eventFiles();
    expect(files.map((f) => basename(f))).toEqual([eventFileName(1_796_000_100)]);
    const kept = readEvents(files[0]!);
    expect(kept.map((e) => e.step)).toEqual([undefined, 1, 2]);
    // The wall times are those the lines were written at, not the resume's.
    expect(kept.map((e) => e.wallTime)).toEqual([1_796_000_001, 1_796_000_001, 1_796_000_002]);
    clock.set(1_796_000_101_000);
    again.appendMetrics(3, { loss: 2.5 }, { split: 'train' });
    const after = readEvents(files[0]!);
    expect(after.map((e) => [e.step, e.scalars])).toEqual([
      [undefined, []],
      [1, [['train/loss', 4]]],
      [2, [['train/loss', 3]]],
      [3, [['train/loss', 2.5]]],
    ]);
  });

  it('tensorboard: false writes none', async () => {
    const run = await RunDir.create(tmpDir(), {
      config: {},
      tensorboard: false,
      liveReport: false,
    });
    run.appendMetrics(1, { loss: 1 }, { split: 'train' });
    expect(run.eventFiles()).toEqual([]);
  });
});
