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
export type Normalizer = (text: string) => string;

/** A regex or literal pattern replaced by `content` everywhere (HF's Replace). */
export function replacer(v: Obj, w: Where): (s: string) => string {
  const p = pattern(v, 'pattern', w);
  const content = str(v, 'content', w);
  if ('string' in p) {
    const from = p.string;
    return from === '' ? (s) => s : (s) => (s.includes(from) ? s.replaceAll(from, content) : s);
  }
  const runs = regexRuns(compilePattern(p.regex));
  return (s) => {
    let out = '';
    runs(s, (a, b, m) => {
      out += m ? content : s.slice(a, b);
    });
    return out;
  };
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
function nmt(s: string): string {
  return mapCodePoints(s, (cp, ch) => {
    if ((cp >= 1 && cp <= 8) || cp === 0xb || (cp >= 0xe && cp <= 0x1f)) return '';
    if (cp === 0x7f || cp === 0x8f || cp === 0x9f) return '';
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
    return (s) => strip(s, left, right);
  },
  StripAccents: () => (s) => mapCodePoints(s, (cp, ch) => ((charFlags(cp) & MARK) !== 0 ? '' : ch)),
  Replace: replacer,
  Prepend: (v, w) => {
    const prefix = str(v, 'prepend', w);
    return (s) => (s.length > 0 ? prefix + s : s);
  },
  Nmt: () => nmt,
  ByteLevel: () => (s) => bytesToSymbols(new TextEncoder().encode(s)),
  BertNormalizer: bertNormalizer,
  Precompiled: precompiled,
  Sequence: (v, w) => {
    const steps = arr(v, 'normalizers', w).map((n, i) =>
      buildNormalizer(n, at(w, `normalizers[${i}]`)),
    );
    const run = steps.filter((f): f is Normalizer => f !== null);
    return (s) => {
      for (const f of run) s = f(s);
      return s;
    };
  },
};

/** tokenizer.json's `normalizer` section → a normalizer, or null for none. */
export function buildNormalizer(v: unknown, w: Where): Normalizer | null {
  if (v === null || v === undefined) return null;
  return build(NORMALIZERS, 'normalizer', v, w);
}
