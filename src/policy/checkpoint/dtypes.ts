import { TroupeError } from '../../errors.js';

/**
 * Safetensors dtypes: bytes per element. Every dtype here is validated on read (sizes, offsets);
 * `decode` converts all but the 8-bit floats to float32. Data is little-endian.
 */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;
/** What Troupe writes. */
export type WriteDtype = 'F32' | 'BF16';

export function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.hasOwn(DTYPE_BYTES, s);
}

/** Floating-point dtypes: the only ones a model weight may be stored as. */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = [
  'F32',
  'F16',
  'BF16',
  'F64',
  'F8_E5M2',
  'F8_E4M3',
];

export function isFloatDtype(d: SafetensorsDtype): boolean {
  return FLOAT_DTYPES.includes(d);
}

/** Typed-array views below assume a little-endian host (every platform Node ships on but s390x). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) {
    throw new TroupeError('UNSUPPORTED', 'Checkpoint IO needs a little-endian host.');
  }
}

/** Value of an IEEE binary16 bit pattern (subnormals, ±Inf, NaN included). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal: m · 2^-24
  if (exp === 31) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25); // (1 + m/1024) · 2^(e-15)
}

let f16Table: Float32Array | undefined;

/** All 65536 binary16 values, built on first use. */
function f16Lookup(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/**
 * The bfloat16 bit pattern nearest to a float32 bit pattern `b`, ties to even. NaN stays NaN
 * (the quiet bit is set so truncating the payload cannot turn it into Inf).
 */
export function f32BitsToBf16(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x0040) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** `raw` as 16-bit words (copied first when its offset is odd). */
function words16(raw: Uint8Array, n: number): Uint16Array {
  const r = raw.byteOffset % 2 === 0 ? raw : raw.slice();
  return new Uint16Array(r.buffer, r.byteOffset, n);
}

type Getter = (v: DataView, at: number) => number;
// Integer and F64 dtypes convert through a DataView (no alignment needed).
const GETTERS: Partial<Record<SafetensorsDtype, Getter>> = {
  BOOL: (v, at) => (v.getUint8(at) === 0 ? 0 : 1),
  U8: (v, at) => v.getUint8(at),
  I8: (v, at) => v.getInt8(at),
  I16: (v, at) => v.getInt16(at, true),
  U16: (v, at) => v.getUint16(at, true),
  I32: (v, at) => v.getInt32(at, true),
  U32: (v, at) => v.getUint32(at, true),
  F64: (v, at) => v.getFloat64(at, true),
  I64: (v, at) => Number(v.getBigInt64(at, true)),
  U64: (v, at) => Number(v.getBigUint64(at, true)),
};

/** Dtypes `decode` converts to float32 (not the 8-bit floats). */
export function canDecode(dtype: SafetensorsDtype): boolean {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || GETTERS[dtype] !== undefined;
}

export const READABLE_DTYPES: readonly SafetensorsDtype[] = (
  Object.keys(DTYPE_BYTES) as SafetensorsDtype[]
).filter(canDecode);

/**
 * `n` elements of `dtype` in `raw` (exactly n·size bytes) as float32. F32 is a view of `raw` when
 * 4-byte aligned, else a copy; integers convert exactly up to 2^24. Callers check `canDecode`.
 */
export function decode(raw: Uint8Array, dtype: SafetensorsDtype, n: number): Float32Array {
  requireLittleEndian();
  if (dtype === 'F32') {
    const r = raw.byteOffset % 4 === 0 ? raw : raw.slice();
    return new Float32Array(r.buffer, r.byteOffset, n);
  }
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const src = words16(raw, n);
    const dst = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) dst[i] = src[i] << 16; // bf16 = upper half of an f32
    return out;
  }
  if (dtype === 'F16') {
    const src = words16(raw, n);
    const table = f16Lookup();
    for (let i = 0; i < n; i++) out[i] = table[src[i]];
    return out;
  }
  const get = GETTERS[dtype];
  if (get === undefined) throw new TroupeError('UNSUPPORTED', `dtype ${dtype} cannot be decoded`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = DTYPE_BYTES[dtype];
  for (let i = 0; i < n; i++) out[i] = get(view, i * size);
  return out;
}

/** Little-endian bytes of `data` stored as `dtype`. F32 is a view of `data` (no copy). */
export function encode(data: Float32Array, dtype: WriteDtype): Uint8Array {
  requireLittleEndian();
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const dst = new Uint16Array(data.length);
  for (let i = 0; i < src.length; i++) dst[i] = f32BitsToBf16(src[i]);
  return new Uint8Array(dst.buffer);
}
