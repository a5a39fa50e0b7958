import { bytesToSymbols } from '../bytes.js';
import { arr, at, type Builder, bool, build, type Obj, pattern, str, type Where } from '../json.js';
import { compilePattern } from '../pattern.js';
import { bertNormalizer } from './bert.js';
import { charFlags, has, lowercaseChars, MARK, mapCodePoints, WHITESPACE } from './chars.js';
import { precompiled } from './precompiled.js';
import { regexRuns } from './split.js';

/**
 * Normalizers: text → text, each a pure function built from its tokenizer.json section. HF runs
 * them on a NormalizedString that also tracks offsets; Troupe needs only the text. They run on
 * each stretch of text between added tokens, as HF runs them.
 */
export interface Normalizer {
  (text: string): string;
  /**
   * Whether the output still begins with what the input began with, for normalizers that can
   * drop the first character (absent: always). HF tracks offsets, and Metaspace's
   * prepend_scheme 'first' prepends only to text that starts at offset 0 of the input.
   */
  readonly keepsStart?: (text: string) => boolean;
}

/** A normalizer function with its `keepsStart` test. */
export const withStart = (
  f: (text: string) => string,
  keepsStart: (text: string) => boolean,
): Normalizer => Object.assign(f, { keepsStart });

const firstCp = (s: string) => s.codePointAt(0) ?? -1;

/** A regex or literal pattern replaced by `content` everywhere (HF's Replace). */
export function replacer(v: Obj, w: Where): Normalizer {
  const p = pattern(v, 'pattern', w);
  const content = str(v, 'content', w);
  if ('string' in p) {
    const from = p.string;
    if (from === '') return (s) => s;
    const f = (s: string) => (s.includes(from) ? s.replaceAll(from, content) : s);
    // Replaced by something, a match keeps its place; replaced by nothing, a leading one goes.
    return content === '' ? withStart(f, (s) => !s.startsWith(from)) : f;
  }
  const re = compilePattern(p.regex);
  const runs = regexRuns(re);
  const f = (s: string) => {
    let out = '';
    runs(s, (a, b, m) => {
      out += m ? content : s.slice(a, b);
    });
    return out;
  };
  if (content !== '') return f;
  return withStart(f, (s) => {
    let leading = false;
    runs(s, (a, _b, m) => {
      if (a === 0 && m) leading = true;
    });
    return !leading;
  });
}

const isWs = (cp: number) => has(cp, WHITESPACE);

function strip(s: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  while (left && a < b && isWs(s.codePointAt(a)!)) a += s.codePointAt(a)! > 0xffff ? 2 : 1;
  while (right && b > a) {
    const lo = s.charCodeAt(b - 1);
    const n = lo >= 0xdc00 && lo <= 0xdfff && b - 2 >= a ? 2 : 1;
    if (!isWs(s.codePointAt(b - n)!)) break;
    b -= n;
  }
  return s.slice(a, b);
}

/** SentencePiece's NMT normalization of control characters and odd spaces (HF's Nmt). */
/** Control characters SentencePiece's NMT normalization drops. */
const nmtDrops = (cp: number) =>
  (cp >= 1 && cp <= 8) ||
  cp === 0xb ||
  (cp >= 0xe && cp <= 0x1f) ||
  cp === 0x7f ||
  cp === 0x8f ||
  cp === 0x9f;

function nmt(s: string): string {
  return mapCodePoints(s, (cp, ch) => {
    if (nmtDrops(cp)) return '';
    if (cp === 9 || cp === 0xa || cp === 0xc || cp === 0xd || cp === 0x1680) return ' ';
    if ((cp >= 0x200b && cp <= 0x200f) || cp === 0x2028 || cp === 0x2029) return ' ';
    if (cp === 0x2581 || cp === 0xfeff || cp === 0xfffd) return ' ';
    return ch;
  });
}

const unicode =
  (form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): Builder<Normalizer> =>
  () =>
  (s) =>
    s.normalize(form);

export const NORMALIZERS: Readonly<Record<string, Builder<Normalizer>>> = {
  NFC: unicode('NFC'),
  NFD: unicode('NFD'),
  NFKC: unicode('NFKC'),
  NFKD: unicode('NFKD'),
  Lowercase: () => lowercaseChars,
  Strip: (v, w) => {
    const left = bool(v, 'strip_left', w, true);
    const right = bool(v, 'strip_right', w, true);
    const f = (s: string) => strip(s, left, right);
    return left ? withStart(f, (s) => !isWs(firstCp(s))) : f;
  },
  StripAccents: () =>
    withStart(
      (s) => mapCodePoints(s, (cp, ch) => ((charFlags(cp) & MARK) !== 0 ? '' : ch)),
      (s) => s === '' || (charFlags(firstCp(s)) & MARK) === 0,
    ),
  Replace: replacer,
  Prepend: (v, w) => {
    const prefix = str(v, 'prepend', w);
    return (s) => (s.length > 0 ? prefix + s : s);
  },
  Nmt: () => withStart(nmt, (s) => !nmtDrops(firstCp(s))),
  ByteLevel: () => (s) => bytesToSymbols(new TextEncoder().encode(s)),
  BertNormalizer: bertNormalizer,
  Precompiled: precompiled,
  Sequence: (v, w) => {
    const steps = arr(v, 'normalizers', w).map((n, i) =>
      buildNormalizer(n, at(w, `normalizers[${i}]`)),
    );
    const run = steps.filter((f): f is Normalizer => f !== null);
    const apply = (s: string) => {
      for (const f of run) s = f(s);
      return s;
    };
    if (run.every((f) => f.keepsStart === undefined)) return apply;
    return withStart(apply, (s) => {
      for (const f of run) {
        if (f.keepsStart?.(s) === false) return false;
        s = f(s);
      }
      return true;
    });
  },
};

/** tokenizer.json's `normalizer` section → a normalizer, or null for none. */
export function buildNormalizer(v: unknown, w: Where): Normalizer | null {
  if (v === null || v === undefined) return null;
  return build(NORMALIZERS, 'normalizer', v, w);
}
