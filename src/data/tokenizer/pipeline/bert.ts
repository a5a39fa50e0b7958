import { bool, type Obj, type Where } from '../json.js';
import {
  charFlags,
  isAsciiPunctuation,
  lowercaseChars,
  MARK_NONSPACING,
  mapCodePoints,
  OTHER,
  PUNCTUATION,
  WHITESPACE,
} from './chars.js';
import { type Normalizer, withStart } from './normalizers.js';
import type { PreTokenizer } from './pre-tokenizers.js';
import { charRuns, splitText } from './split.js';

/** The CJK ideograph blocks BERT puts spaces around (HF normalizers/bert.rs). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const TAB_LF_CR = (cp: number) => cp === 9 || cp === 10 || cp === 13;

/** NUL, U+FFFD and control characters (but not tab/newline) go; every whitespace becomes ' '. */
function cleanText(s: string): string {
  return mapCodePoints(s, (cp, ch) => {
    if (cp === 0 || cp === 0xfffd) return '';
    const f = charFlags(cp);
    if ((f & OTHER) !== 0 && !TAB_LF_CR(cp)) return '';
    return (f & WHITESPACE) !== 0 || TAB_LF_CR(cp) ? ' ' : ch;
  });
}

const spaceChinese = (s: string) =>
  mapCodePoints(s, (cp, ch) => (isChineseChar(cp) ? ` ${ch} ` : ch));

/** NFD, then the non-spacing marks dropped. */
const stripAccents = (s: string) =>
  mapCodePoints(s.normalize('NFD'), (cp, ch) =>
    (charFlags(cp) & MARK_NONSPACING) !== 0 ? '' : ch,
  );

/**
 * BertNormalizer: clean_text, handle_chinese_chars, strip_accents (null: follows lowercase),
 * lowercase, applied in that order.
 */
export function bertNormalizer(v: Obj, w: Where): Normalizer {
  const clean = bool(v, 'clean_text', w, true);
  const chinese = bool(v, 'handle_chinese_chars', w, true);
  const lowercase = bool(v, 'lowercase', w, true);
  const accents = bool(v, 'strip_accents', w, lowercase);
  const f = (s: string) => {
    if (clean) s = cleanText(s);
    if (chinese) s = spaceChinese(s);
    if (accents) s = stripAccents(s);
    if (lowercase) s = lowercaseChars(s);
    return s;
  };
  // The first character goes if clean_text drops it, or (NFD'd) it is a non-spacing mark.
  return withStart(f, (s) => {
    const cp = s.codePointAt(0);
    if (cp === undefined) return true;
    if (clean && cleanText(String.fromCodePoint(cp)) === '') return false;
    const first = s.normalize('NFD').codePointAt(0)!;
    return !(accents && (charFlags(first) & MARK_NONSPACING) !== 0);
  });
}

/** Unicode punctuation or an ASCII symbol/punctuation mark (HF's `is_bert_punc`). */
export const isBertPunctuation = (cp: number): boolean =>
  isAsciiPunctuation(cp) || (charFlags(cp) & PUNCTUATION) !== 0;

const isWhitespace = (cp: number) => (charFlags(cp) & WHITESPACE) !== 0;

/** BertPreTokenizer: split on whitespace (removed), then every punctuation mark on its own. */
const spaces = charRuns(isWhitespace);
const punctuation = charRuns(isBertPunctuation);

export const bertPreTokenizer: PreTokenizer = (piece, atStart, emit) => {
  splitText(piece, spaces, 'Removed', (s, e) => {
    const word = piece.slice(s, e);
    const first = atStart && s === 0;
    splitText(word, punctuation, 'Isolated', (a, b) => emit(word.slice(a, b), first && a === 0));
  });
};
