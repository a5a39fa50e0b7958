import { MessageChannel, Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  manifestElements,
  packWeights,
  SHARED_WEIGHTS_HEADER_BYTES,
  SharedWeights,
  unpackWeights,
  type WeightManifest,
  type WeightState,
  weightManifest,
} from '../../src/actors/weights.js';
import { thrown } from '../helpers/thrown.js';

/** Deterministic floats spread over many exponents (LCG bits → sign, exponent 100..156, mantissa). */
function seededFloats(n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const exponent = 100 + (s % 57);
    bits[i] = ((s & 0x80000000) | (exponent << 23) | ((s >>> 5) & 0x7fffff)) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

function stateOf(
  shapes: Record<string, number[]>,
  seed = 1,
): Map<string, { shape: number[]; data: Float32Array }> {
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of Object.entries(shapes)) {
    state.set(name, {
      shape,
      data: seededFloats(
        shape.reduce((a, b) => a * b, 1),
        seed++,
      ),
    });
  }
  return state;
}

const SHAPES = {
  'wte.weight': [11, 4],
  'h.0.ln_1.bias': [4],
  'h.0.attn.c_attn.weight': [4, 12],
  scale: [],
};

/** -0, subnormals, min normal, max finite, ±Inf, NaNs with payloads, rounding ties. */
const SPECIAL_BITS = [
  0x80000000, 0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,
  0x7fc00001, 0xffc12345, 0x7f800001, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x00008000,
  0x00018000, 0x7f7f8000, 0x7f7f7fff,
];

/**
 * The bfloat16 nearest to the float32 with bit pattern `bits`, ties to even, by value: compare the
 * distances to the two bf16 neighbours (truncated, and one ulp up; an overflow counts as 2^128, as
 * IEEE rounding with an unbounded exponent does). NaN: any NaN pattern.
 */
function referenceBf16(bits: number): number {
  const sign = bits & 0x80000000 ? 0x8000 : 0;
  const mag = bits & 0x7fffffff;
  if (mag > 0x7f800000) return sign | 0x7fc0;
  const value = (b: number) =>
    b >= 0x7f800000 ? 2 ** 128 : new Float32Array(new Uint32Array([b]).buffer)[0];
  const x = value(mag);
  const lo = mag & 0x7fff0000;
  const hi = lo + 0x10000;
  const dLo = x - value(lo);
  const dHi = value(hi) - x;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : (lo >>> 16) % 2 === 0 ? lo : hi;
  return sign | (pick >>> 16);
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('packWeights / unpackWeights', () => {
  it('lays tensors out in order without gaps; offsets and lengths count elements', () => {
    const { manifest, buffer, dtype } = packWeights(stateOf(SHAPES), { dtype: 'float32' });
    expect(dtype).toBe('float32');
    expect(manifest).toEqual([
      { name: 'wte.weight', shape: [11, 4], offset: 0, length: 44 },
      { name: 'h.0.ln_1.bias', shape: [4], offset: 44, length: 4 },
      { name: 'h.0.attn.c_attn.weight', shape: [4, 12], offset: 48, length: 48 },
      { name: 'scale', shape: [], offset: 96, length: 1 },
    ]);
    expect(buffer.byteLength).toBe(97 * 4);
    expect(packWeights(stateOf(SHAPES), { dtype: 'bfloat16' }).manifest).toEqual(manifest);
  });

  it('float32 round-trips bit-exactly, special values included', () => {
    const state = stateOf(SHAPES);
    state.set('special', {
      shape: [SPECIAL_BITS.length],
      data: new Float32Array(Uint32Array.from(SPECIAL_BITS).buffer),
    });
    const { manifest, buffer } = packWeights(state, { dtype: 'float32' });
    const got = unpackWeights(manifest, buffer, 'float32');
    expect([...got.keys()]).toEqual([...state.keys()]);
    for (const [name, w] of state) {
      expect(got.get(name)!.shape).toEqual(w.shape);
      expect(bitsOf(got.get(name)!.data)).toEqual(bitsOf(w.data));
    }
  });

  it('bfloat16 halves the bytes and rounds to nearest even, as the by-value reference does', () => {
    const random = seededFloats(20_000, 7);
    const data = new Float32Array(random.length + SPECIAL_BITS.length);
    data.set(random);
    new Uint32Array(data.buffer).set(SPECIAL_BITS, random.length);
    const state = new Map([['w', { shape: [data.length], data }]]);
    const { manifest, buffer } = packWeights(state, { dtype: 'bfloat16' });
    expect(buffer.byteLength).toBe(data.length * 2);
    const got = new Uint16Array(buffer);
    const src = bitsOf(data);
    const isNaN16 = (h: number) => (h & 0x7fff) > 0x7f80;
    const wrong: string[] = [];
    for (let i = 0; i < data.length; i++) {
      const want = referenceBf16(src[i]);
      if (isNaN16(want) ? !isNaN16(got[i]) : got[i] !== want) {
        wrong.push(
          `0x${src[i].toString(16)} → 0x${got[i].toString(16)}, want 0x${want.toString(16)}`,
        );
      }
    }
    expect(wrong).toEqual([]);
    // Widening back is exact: every bf16 is the upper half of a float32 whose low half is zero.
    const wide = bitsOf(unpackWeights(manifest, buffer, 'bfloat16').get('w')!.data);
    expect(wide.every((b, i) => b >>> 16 === got[i] && (b & 0xffff) === 0)).toBe(true);
  });

  it('reuses a buffer handed back, and refuses one of the wrong size', () => {
    const state = stateOf(SHAPES);
    const into = new ArrayBuffer(97 * 2);
    expect(packWeights(state, { dtype: 'bfloat16', into }).buffer).toBe(into);
    expect(() => packWeights(state, { dtype: 'float32', into })).toThrow(
      "packWeights: 'into' has 194 bytes, the float32 weights need 388",
    );
  });

  it('refuses a tensor whose data does not fill its shape, an unknown dtype and an out-of-range manifest', () => {
    const bad = new Map([['w', { shape: [2, 3], data: new Float32Array(5) }]]);
    expect(() => packWeights(bad, { dtype: 'float32' })).toThrow(
      "Weight 'w': shape [2, 3] holds 6 elements, data has 5",
    );
    expect(() => packWeights(stateOf(SHAPES), { dtype: 'float16' as 'float32' })).toThrow(
      'Unknown weight dtype "float16". Known: float32, bfloat16.',
    );
    const manifest: WeightManifest = [{ name: 'w', shape: [4], offset: 2, length: 4 }];
    expect(() => unpackWeights(manifest, new ArrayBuffer(20), 'float32')).toThrow(
      "Weight 'w' spans elements [2, 6) of a buffer of 5",
    );
  });

  it('a transfer detaches the sender’s buffer; the receiver unpacks the weights', async () => {
    const state = stateOf(SHAPES);
    const packed = packWeights(state, { dtype: 'float32' });
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<{ manifest: WeightManifest; buffer: ArrayBuffer }>((resolve) =>
      port2.once('message', resolve),
    );
    port1.postMessage({ manifest: packed.manifest, buffer: packed.buffer }, [packed.buffer]);
    expect(packed.buffer.byteLength).toBe(0);
    const msg = await received;
    expect(msg.buffer.byteLength).toBe(97 * 4);
    const got = unpackWeights(msg.manifest, msg.buffer, 'float32');
    for (const [name, w] of state) expect(bitsOf(got.get(name)!.data)).toEqual(bitsOf(w.data));
    port1.close();
  });
});

describe('SharedWeights', () => {
  it('publishes versions 2, 4, …; readers copy the latest; readIfChanged skips a version seen', () => {
    const a = stateOf(SHAPES, 1);
    const b = stateOf(SHAPES, 9);
    const sw = SharedWeights.create(weightManifest(a), 'float32');
    expect(sw.version).toBe(0);
    expect(sw.readIfChanged(0)).toBeUndefined();
    expect(sw.write(a)).toBe(2);
    const reader = SharedWeights.attach(sw.handle);
    const first = reader.readState();
    expect(first.version).toBe(2);
    for (const [name, w] of a) expect(bitsOf(first.state.get(name)!.data)).toEqual(bitsOf(w.data));
    expect(reader.readIfChanged(2)).toBeUndefined();
    expect(sw.write(packWeights(b, { dtype: 'float32' }).buffer)).toBe(4);
    const second = reader.readIfChanged(2)!;
    expect(second.version).toBe(4);
    const got = unpackWeights(sw.manifest, second.buffer, 'float32');
    for (const [name, w] of b) expect(bitsOf(got.get(name)!.data)).toEqual(bitsOf(w.data));
    // The first snapshot was a private copy: the new write did not change it.
    for (const [name, w] of a) expect(bitsOf(first.state.get(name)!.data)).toEqual(bitsOf(w.data));
  });

  it('bfloat16 shared weights hold what packWeights produces', () => {
    const state = stateOf(SHAPES);
    const sw = SharedWeights.create(weightManifest(state), 'bfloat16');
    expect(sw.byteLength).toBe(97 * 2);
    sw.write(state);
    const { buffer } = sw.read({ into: new ArrayBuffer(sw.byteLength) });
    expect(new Uint16Array(buffer)).toEqual(
      new Uint16Array(packWeights(state, { dtype: 'bfloat16' }).buffer),
    );
  });

  it('refuses a state that does not match the manifest, and bytes of the wrong length', () => {
    const state = stateOf(SHAPES);
    const sw = SharedWeights.create(weightManifest(state), 'float32');
    const other: WeightState = new Map(
      [...state].map(([k, v]) => [k, k === 'scale' ? { shape: [1], data: v.data } : v]),
    );
    expect(() => sw.write(other)).toThrow(
      "Weight 'scale': the manifest says [], the state has [1]",
    );
    const fewer = new Map([...state].slice(1));
    expect(() => sw.write(fewer)).toThrow(
      "Weight 'wte.weight' is in the manifest but not in the state",
    );
    const more = new Map([...state, ['extra', { shape: [1], data: new Float32Array(1) }]]);
    expect(() => sw.write(more)).toThrow('The state has weights the manifest does not: extra');
    expect(() => sw.write(new ArrayBuffer(8))).toThrow(
      'SharedWeights.write: got 8 bytes, the float32 weights are 388',
    );
    expect(sw.version).toBe(0);
  });

  it('a write in progress (odd version) blocks a second writer, and a reader gives up after its timeout', () => {
    const sw = SharedWeights.create(weightManifest(stateOf(SHAPES)), 'float32');
    const header = new Int32Array(sw.handle.buffer, 0, 1);
    Atomics.store(header, 0, 7); // as a writer that died mid-write leaves it
    const second = thrown(() => sw.write(stateOf(SHAPES)));
    expect(second.code).toBe('UNSUPPORTED');
    const t0 = performance.now();
    expect(() => sw.read({ timeoutMs: 50 })).toThrow(/found no quiet moment to copy in 50 ms/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  });

  it('attach refuses a buffer of the wrong size', () => {
    const manifest = weightManifest(stateOf(SHAPES));
    expect(() =>
      SharedWeights.attach({ buffer: new SharedArrayBuffer(100), manifest, dtype: 'float32' }),
    ).toThrow(
      'SharedWeights buffer has 100 bytes; a 64-byte header and 97 float32 weights need 452',
    );
  });
});

describe('SharedWeights across real threads', () => {
  const ELEMENTS = 1 << 18; // 1 MiB of float32: a copy takes long enough for writes to overlap it
  const WRITES = 1500;

  function start(role: 'writer' | 'reader', sw: SharedWeights, control: SharedArrayBuffer) {
    const worker = new Worker(new URL('./fixtures/seqlock-worker.mjs', import.meta.url), {
      workerData: {
        role,
        buffer: sw.handle.buffer,
        headerBytes: SHARED_WEIGHTS_HEADER_BYTES,
        elements: ELEMENTS,
        writes: WRITES,
        control,
      },
    });
    const result = new Promise<Record<string, number>>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }).finally(() => worker.terminate());
    const ctl = new Int32Array(control);
    // Block until the worker runs, so the two threads overlap.
    while (Atomics.load(ctl, 1) === 0) Atomics.wait(ctl, 1, 0, 20);
    return { result, ctl };
  }

  const oneTensor = (): WeightManifest => [
    { name: 'w', shape: [ELEMENTS], offset: 0, length: ELEMENTS },
  ];

  it('a worker writes while this thread reads: every read is one whole version, versions never go back', async () => {
    const sw = SharedWeights.create(oneTensor(), 'float32');
    const { result, ctl } = start('writer', sw, new SharedArrayBuffer(12));
    const into = new ArrayBuffer(sw.byteLength);
    const view = new Float32Array(into);
    let reads = 0;
    let torn = 0;
    let backwards = 0;
    let last = 0;
    const versions = new Set<number>();
    for (let stop = false; !stop; ) {
      stop = Atomics.load(ctl, 0) === 1; // one more read once the writer is done
      const { version } = sw.read({ into });
      if (reads === 0) {
        Atomics.store(ctl, 2, 1); // the writer starts once this thread reads
        Atomics.notify(ctl, 2);
      }
      reads++;
      versions.add(version);
      if (version < last) backwards++;
      last = version;
      if (view.some((x) => x !== version)) torn++;
    }
    const { version: final } = await result;
    expect(final).toBe(2 * WRITES);
    expect({ torn, backwards, last }).toEqual({ torn: 0, backwards: 0, last: final });
    expect(versions.size, `${reads} reads saw ${versions.size} versions`).toBeGreaterThan(1);
  });

  it('this thread writes while a worker reads: no torn reads there either', async () => {
    const sw = SharedWeights.create(oneTensor(), 'float32');
    const control = new SharedArrayBuffer(8);
    const { result, ctl } = start('reader', sw, control);
    const data = new Float32Array(ELEMENTS);
    const state = new Map([['w', { shape: [ELEMENTS], data }]]);
    const published: number[] = [];
    for (let k = 0; k < WRITES; k++) {
      data.fill(sw.version + 2);
      published.push(sw.write(state));
    }
    Atomics.store(ctl, 0, 1);
    const r = await result;
    expect(published.every((v, i) => v === 2 * (i + 1))).toBe(true);
    expect({ torn: r['torn'], backwards: r['backwards'], last: r['last'] }).toEqual({
      torn: 0,
      backwards: 0,
      last: 2 * WRITES,
    });
    expect(r['distinct'], `${r['reads']} reads, ${r['retries']} retries`).toBeGreaterThan(1);
  });

  it('manifestElements spans the last entry', () => {
    expect(manifestElements(oneTensor())).toBe(ELEMENTS);
    expect(manifestElements([])).toBe(0);
  });
});
