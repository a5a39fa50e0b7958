/**
 * The character classes HF tokenizers' pieces test with Rust's `char` methods and the
 * `unicode_categories` crate, as one bit table over the BMP (built once, lazily) and a regex test
 * above it.
 */

export const WHITESPACE = 1; // char::is_whitespace: Unicode White_Space
/** is_other: Cc Cf Co Cs (the crate leaves unassigned code points out, checked against HF). */
export const OTHER = 2;
export const PUNCTUATION = 4; // is_punctuation: general category P
export const MARK_NONSPACING = 8; // is_mark_nonspacing: Mn
export const MARK = 16; // is_combining_mark: M (Mn Mc Me)
export const NUMERIC = 32; // char::is_numeric: Nd Nl No

const CLASSES: readonly [number, RegExp][] = [
  [WHITESPACE, /^\p{White_Space}$/u],
  [OTHER, /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}]$/u],
  [PUNCTUATION, /^\p{P}$/u],
  [MARK_NONSPACING, /^\p{Mn}$/u],
  [MARK, /^\p{M}$/u],
  [NUMERIC, /^\p{N}$/u],
];

let bmp: Uint8Array | undefined;

function flagsOf(cp: number): number {
  // Surrogate code points are category Cs; a lone one reaches here as itself.
  const s = String.fromCodePoint(cp);
  let f = 0;
  for (const [bit, re] of CLASSES) if (re.test(s)) f |= bit;
  return f;
}

/** The class bits of a code point. */
export function charFlags(cp: number): number {
  if (cp < 0x10000) {
    if (bmp === undefined) {
      bmp = new Uint8Array(0x10000);
      for (let c = 0; c < 0x10000; c++) bmp[c] = c >= 0xd800 && c <= 0xdfff ? OTHER : flagsOf(c);
    }
    return bmp[cp];
  }
  return flagsOf(cp);
}

export const has = (cp: number, bit: number): boolean => (charFlags(cp) & bit) !== 0;

/** char::is_ascii_punctuation: the 32 ASCII symbols and punctuation marks. */
export const isAsciiPunctuation = (cp: number): boolean =>
  (cp >= 0x21 && cp <= 0x2f) ||
  (cp >= 0x3a && cp <= 0x40) ||
  (cp >= 0x5b && cp <= 0x60) ||
  (cp >= 0x7b && cp <= 0x7e);

/** Maps each code point of `s` through `f` (a string to put in its place, possibly empty). */
export function mapCodePoints(s: string, f: (cp: number, ch: string) => string): string {
  let out = '';
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const n = cp > 0xffff ? 2 : 1;
    out += f(cp, n === 1 ? s[i] : s.slice(i, i + 2));
    i += n;
  }
  return out;
}

/**
 * Rust's per-character `to_lowercase` (what HF's Lowercase does): like JS `toLowerCase` except
 * that a capital sigma is always σ (JS writes ς at the end of a word).
 */
export function lowercaseChars(s: string): string {
  if (!s.includes('\u03a3')) return s.toLowerCase();
  return mapCodePoints(s, (cp, ch) => (cp === 0x3a3 ? '\u03c3' : ch.toLowerCase()));
}
