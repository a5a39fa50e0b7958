/**
 * GPT-2's byte ↔ unicode table. Byte-level BPE works on the 256 byte values, but vocab files
 * store tokens as strings, so every byte gets a printable character: the printable Latin-1 bytes
 * stand for themselves and the others (controls, space, soft hyphen…) are shifted to U+0100
 * onwards (space → 'Ġ', newline → 'Ċ'). The table is the one in openai/gpt-2 `encoder.py`.
 */

/** BYTE_TO_CHAR[b] is the character that stands for byte b. */
export const BYTE_TO_CHAR: readonly string[] = buildTable();

/** Char code (< 324) → byte, or -1 when the code is no byte's character. */
const CODE_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(324).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => {
    t[c.charCodeAt(0)] = b;
  });
  return t;
})();

function buildTable(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(printable(b) ? b : 256 + shifted++);
  }
  return table;
}

/** The byte-level string of some bytes (what vocab files store). */
export function bytesToSymbols(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let s = '';
  for (let i = start; i < end; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/** The bytes of a byte-level string, or undefined when a character is not in the table. */
export function symbolsToBytes(symbols: string): Uint8Array | undefined {
  const out = new Uint8Array(symbols.length);
  for (let i = 0; i < symbols.length; i++) {
    const code = symbols.charCodeAt(i);
    const b = code < CODE_TO_BYTE.length ? CODE_TO_BYTE[code] : -1;
    if (b < 0) return undefined;
    out[i] = b;
  }
  return out;
}

/**
 * UTF-8 of `text[start, end)` into `out` (which must hold 3 bytes per UTF-16 unit); returns the
 * byte count. Hand-written because TextEncoder's per-call cost dominates for the short
 * pre-tokens BPE sees. A lone surrogate becomes EF BF BD (U+FFFD), as TextEncoder does.
 */
export function utf8Encode(text: string, start: number, end: number, out: Uint8Array): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const lo = i + 1 < end ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 0x3f);
        out[n++] = 0x80 | ((c >> 6) & 0x3f);
        out[n++] = 0x80 | (c & 0x3f);
      } else {
        out[n++] = 0xef;
        out[n++] = 0xbf;
        out[n++] = 0xbd;
      }
    } else {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}
