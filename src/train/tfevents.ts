import { hostname } from 'node:os';

/**
 * TensorBoard event files, written by hand (no TensorFlow): a file of TFRecords, each an `Event`
 * protocol buffer. The first event names the format (`file_version: "brain.Event:2"`); each
 * metrics line then becomes one event with its wall time, its step and a `Summary` of scalars
 * (`simple_value`), tagged `train/loss`, `eval/reward`, `train/actor/kl_loss`, … so that
 * `tensorboard --logdir runs/` shows every run directory as a run.
 *
 * A TFRecord (tensorflow/core/lib/io/record_writer.cc):
 *   uint64 length (little-endian) · uint32 masked_crc32c(length) · data · uint32 masked_crc32c(data)
 * The fields used (tensorflow/core/util/event.proto, framework/summary.proto):
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
 */

/** The name TensorBoard looks for ("tfevents" in it), as TensorFlow's writers spell it. */
export function eventFileName(wallTimeS: number, host = hostname(), pid = process.pid): string {
  return `events.out.tfevents.${Math.floor(wallTimeS)}.${host}.${pid}.troupe`;
}

/** Matches the event files Troupe writes (and no other writer's). */
export const TROUPE_EVENT_FILE = /^events\.out\.tfevents\..*\.troupe$/;

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per byte. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 bits, add a constant (so a CRC of CRCs is not 0). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `data`. */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** Protocol-buffer writing: just the wire types the Event fields need. */
class Proto {
  private readonly parts: number[] = [];

  /** A base-128 varint of a non-negative integer up to 2^53. */
  private varint(n: number): void {
    let v = n;
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }

  private key(field: number, wire: 0 | 1 | 2 | 5): void {
    this.varint(field * 8 + wire);
  }

  uint(field: number, n: number): this {
    this.key(field, 0);
    this.varint(n);
    return this;
  }

  double(field: number, x: number): this {
    this.key(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    this.parts.push(...b);
    return this;
  }

  float(field: number, x: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    this.parts.push(...b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.varint(b.length);
    for (const x of b) this.parts.push(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** The first event of every file: which format it is. */
export function fileVersionEvent(wallTimeS: number): Uint8Array {
  return new Proto().double(1, wallTimeS).string(3, 'brain.Event:2').done();
}

/** An event of scalars at `step` (float32 values, as TensorBoard stores them; NaN and ±Inf kept). */
export function scalarsEvent(
  wallTimeS: number,
  step: number,
  scalars: ReadonlyArray<readonly [tag: string, value: number]>,
): Uint8Array {
  const summary = new Proto();
  for (const [tag, value] of scalars) {
    summary.bytes(1, new Proto().string(1, tag).float(2, value).done());
  }
  return new Proto().double(1, wallTimeS).uint(2, step).bytes(5, summary.done()).done();
}

/** The records of one metrics line: its values as `split/name` scalars. */
export function metricsRecord(
  wallTimeS: number,
  step: number,
  split: string,
  values: Readonly<Record<string, number>>,
): Uint8Array {
  const scalars = Object.entries(values).map(([k, v]) => [`${split}/${k}`, v] as const);
  return tfRecord(scalarsEvent(wallTimeS, step, scalars));
}
