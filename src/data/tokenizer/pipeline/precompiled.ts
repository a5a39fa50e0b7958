import { bad, type Obj, type Where } from '../json.js';
import type { Normalizer } from './normalizers.js';

/**
 * SentencePiece's compiled normalization rules (HF's `Precompiled`, the spm_precompiled crate):
 * `precompiled_charsmap` is base64 of [u32 LE: trie size in bytes][trie: u32 units of a
 * darts-clone double array][normalized strings, NUL-terminated]. A key's value is the byte
 * offset of its replacement. HF looks up each grapheme of under 6 UTF-8 bytes whole, otherwise
 * (or when the grapheme has no rule) each of its characters, and takes the *first* (shortest)
 * prefix match of the lookup, as the crate does.
 */
export class CharsMap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;
  private readonly decoded = new Map<number, string>();
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();

  constructor(blob: Uint8Array, w: Where) {
    if (blob.length < 4) throw bad(w, 'precompiled_charsmap is shorter than its 4-byte header');
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || 4 + trieBytes > blob.length) {
      throw bad(w, `precompiled_charsmap declares a trie of ${trieBytes} bytes in ${blob.length}`);
    }
    this.units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.strings = blob.subarray(4 + trieBytes);
  }

  /** The replacement of the shortest key that prefixes `bytes`, or undefined. */
  lookup(bytes: Uint8Array): string | undefined {
    const u = this.units;
    if (u.length === 0) return undefined;
    // darts-clone unit fields: offset, label, has_leaf, value.
    const offset = (x: number) => (x >>> 10) << ((x & (1 << 9)) >>> 6);
    let pos = offset(u[0]);
    for (const c of bytes) {
      if (c === 0) break;
      pos ^= c;
      const unit = u[pos];
      if (unit === undefined || (unit & ((1 << 31) | 0xff)) >>> 0 !== c) return undefined;
      pos ^= offset(unit);
      if (((unit >>> 8) & 1) === 1) return this.stringAt(u[pos] & 0x7fffffff);
    }
    return undefined;
  }

  private stringAt(index: number): string {
    let s = this.decoded.get(index);
    if (s === undefined) {
      let end = index;
      while (end < this.strings.length && this.strings[end] !== 0) end++;
      s = this.dec.decode(this.strings.subarray(index, end));
      this.decoded.set(index, s);
    }
    return s;
  }

  transform(chunk: string): string | undefined {
    return this.lookup(this.enc.encode(chunk));
  }
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The grapheme clusters of `s`. Between two ASCII characters other than CR LF there is always a
 * cluster boundary, so ASCII runs are cut there and only the rest goes through the segmenter
 * (which is also quadratic in V8 on long strings: 100k characters took 20 s).
 */
function forEachGrapheme(s: string, fn: (g: string) => void): void {
  let start = 0;
  const chunk = (end: number) => {
    if (end - start === 1) fn(s[start]);
    else for (const { segment } of segmenter.segment(s.slice(start, end))) fn(segment);
    start = end;
  };
  for (let i = 1; i < s.length; i++) {
    const a = s.charCodeAt(i - 1);
    const b = s.charCodeAt(i);
    if (a < 0x80 && b < 0x80 && !(a === 13 && b === 10)) chunk(i);
  }
  if (start < s.length) chunk(s.length);
}

export function precompiled(v: Obj, w: Where): Normalizer {
  const raw = v['precompiled_charsmap'];
  if (raw === null || raw === undefined || raw === '') return (s) => s;
  if (typeof raw !== 'string') throw bad(w, 'precompiled_charsmap must be a base64 string');
  const map = new CharsMap(new Uint8Array(Buffer.from(raw, 'base64')), w);
  const enc = new TextEncoder();
  // A grapheme's replacement, or null for none (most text repeats a few hundred graphemes).
  const memo = new Map<string, string | null>();
  const replace = (g: string): string | null => {
    let r = memo.get(g);
    if (r === undefined) {
      r = null;
      if (enc.encode(g).length < 6) r = map.transform(g) ?? null;
      if (r === null && g.length > 1) {
        let out = '';
        let changed = false;
        for (const ch of g) {
          const t = map.transform(ch);
          changed ||= t !== undefined;
          out += t ?? ch;
        }
        if (changed) r = out;
      }
      if (memo.size < 1 << 16) memo.set(g, r);
    }
    return r;
  };
  const f: Normalizer = (s: string) => {
    let out = '';
    forEachGrapheme(s, (g) => {
      out += replace(g) ?? g;
    });
    return out;
  };
  // No `keepsStart`: HF records no offset change for a first grapheme mapped to nothing (its
  // `replace` has no earlier character to charge it to), so the text still starts at 0.
  return f;
}
