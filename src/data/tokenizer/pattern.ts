import { TroupeError } from '../../errors.js';

/**
 * Pre-tokeniser patterns, written as the tokenizer.json files (and OpenAI's encoder.py) write
 * them: Oniguruma/Rust regex syntax. `compilePattern` turns them into a JS RegExp.
 */
export const PATTERNS = {
  /** GPT-2 / r50k; also what a ByteLevel pre-tokenizer with `use_regex: true` applies. */
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  /** Llama 3: case-insensitive contractions, digits in groups of at most three. */
  llama3:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  /** Qwen2 / Qwen2.5 / Qwen3: as Llama 3 but every digit is its own pre-token. */
  qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
} as const;

/**
 * Unicode White_Space, which is what `\s` means to Oniguruma (HF tokenizers) and Rust's regex
 * (tiktoken). JS's `\s` differs in two code points: it lacks U+0085 (NEL) and adds U+FEFF (BOM).
 */
export const WHITE_SPACE =
  '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Escapes whose JS meaning (with the `u` flag) differs from Oniguruma's, or that JS lacks. */
const CLASS_ESCAPES: Readonly<Record<string, { inClass: string; alone: string } | undefined>> = {
  s: { inClass: WHITE_SPACE, alone: `[${WHITE_SPACE}]` },
  d: { inClass: '\\p{Nd}', alone: '\\p{Nd}' },
  w: { inClass: '\\p{L}\\p{M}\\p{Nd}\\p{Pc}', alone: '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]' },
  // Negated classes cannot be merged into an enclosing class without the `v` flag.
  S: { inClass: '', alone: `[^${WHITE_SPACE}]` },
  D: { inClass: '', alone: '\\P{Nd}' },
  W: { inClass: '', alone: '[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]' },
};

/** Escapes JS (u flag) accepts with the same meaning. */
const SAME_ESCAPES = new Set(['n', 'r', 't', 'f', 'v', 'b', 'B', '0']);
/** Syntax characters that JS lets you escape with the `u` flag (plus `-` inside a class). */
const JS_ESCAPABLE = new Set('^$\\.*+?()[]{}|/'.split(''));

function unsupported(pattern: string, construct: string, at: number): TroupeError {
  return new TroupeError(
    'UNSUPPORTED',
    `Pre-tokenizer regex uses ${construct} at offset ${at}, which Troupe cannot translate to a JS RegExp: ${JSON.stringify(pattern)}`,
    { details: { pattern, construct, offset: at } },
  );
}

/** Expands the letters of a `(?i:…)` group into `[xX]` classes (Node 20 rejects `(?i:`). */
function caseFold(ch: string): string {
  const lo = ch.toLowerCase();
  const up = ch.toUpperCase();
  return lo !== up && lo.length === 1 && up.length === 1 ? `[${lo}${up}]` : ch;
}

/**
 * Translates an Oniguruma/Rust pattern to JS RegExp source for the `u` flag. Handles `(?i:…)`
 * groups, `\s \S \d \D \w \W` (given their Unicode meaning), `\x{…}`, `\e`, `\a` and escaped
 * punctuation; anything else unusual (possessive quantifiers, atomic groups, inline flags,
 * POSIX brackets, nested or intersected classes, `\A \z \G \K \h`) fails with UNSUPPORTED naming it.
 */
export function translatePattern(pattern: string): string {
  let out = '';
  let inClass = false;
  // One entry per open group: whether it is case-insensitive.
  const groups: boolean[] = [];
  const caseless = () => groups.includes(true);
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      const e = pattern[i + 1];
      if (e === undefined) throw unsupported(pattern, 'a trailing backslash', i);
      i++;
      const cls = CLASS_ESCAPES[e];
      if (cls) {
        if (inClass && cls.inClass === '') throw unsupported(pattern, `'\\${e}' inside [...]`, i);
        out += inClass ? cls.inClass : cls.alone;
      } else if (e === 'p' || e === 'P') {
        const m = /^\{(\^?)([A-Za-z_=]+)\}/.exec(pattern.slice(i + 1));
        if (!m) throw unsupported(pattern, `'\\${e}' without {Name}`, i);
        out += `\\${m[1] ? (e === 'p' ? 'P' : 'p') : e}{${m[2]}}`;
        i += m[0].length;
      } else if (e === 'x' && pattern[i + 1] === '{') {
        const close = pattern.indexOf('}', i);
        out += `\\u{${pattern.slice(i + 2, close)}}`;
        i = close;
      } else if (e === 'x' || e === 'u') {
        // \xHH and \uHHHH mean the same in JS; copied whole so (?i:) never folds their digits.
        const len = e === 'x' ? 2 : 4;
        out += `\\${e}${pattern.slice(i + 1, i + 1 + len)}`;
        i += len;
      } else if (e === 'e') {
        out += '\\x1b';
      } else if (e === 'a') {
        out += '\\x07';
      } else if (SAME_ESCAPES.has(e) && !(inClass && (e === 'b' || e === 'B'))) {
        out += `\\${e}`;
      } else if (/[A-Za-z1-9]/.test(e)) {
        throw unsupported(pattern, `the escape '\\${e}'`, i - 1);
      } else {
        // Escaped punctuation: JS's u flag only allows escaping syntax characters.
        out += JS_ESCAPABLE.has(e) || (inClass && e === '-') ? `\\${e}` : e;
      }
    } else if (inClass) {
      if (ch === '[') throw unsupported(pattern, 'a nested class or POSIX bracket', i);
      if (ch === '&' && pattern[i + 1] === '&') throw unsupported(pattern, 'class intersection', i);
      if (ch === ']') inClass = false;
      out += ch;
    } else if (ch === '[') {
      if (caseless()) throw unsupported(pattern, 'a [...] class inside (?i:...)', i);
      inClass = true;
      out += ch;
      if (pattern[i + 1] === '^') out += pattern[++i];
      // A leading ']' is a literal in Oniguruma.
      if (pattern[i + 1] === ']') {
        out += '\\]';
        i++;
      }
    } else if (ch === '(') {
      if (pattern.startsWith('(?i:', i)) {
        groups.push(true);
        out += '(?:';
        i += 3;
      } else if (pattern[i + 1] === '?') {
        const next = pattern[i + 2];
        const lookbehind = next === '<' && (pattern[i + 3] === '=' || pattern[i + 3] === '!');
        const named = next === '<' && !lookbehind;
        if (next !== ':' && next !== '=' && next !== '!' && !lookbehind && !named) {
          const what = next === '>' ? 'an atomic group (?>...)' : `the group '(?${next}'`;
          throw unsupported(pattern, what, i);
        }
        groups.push(false);
        out += ch;
      } else {
        groups.push(false);
        out += ch;
      }
    } else if (ch === ')') {
      groups.pop();
      out += ch;
    } else if ((ch === '+' || ch === '*' || ch === '?' || ch === '}') && pattern[i + 1] === '+') {
      throw unsupported(pattern, `a possessive quantifier '${ch}+'`, i);
    } else {
      out += caseless() ? caseFold(ch) : ch;
    }
  }
  return out;
}

/** A global, unicode JS RegExp for a tokenizer.json pattern; UNSUPPORTED when it cannot be built. */
export function compilePattern(pattern: string): RegExp {
  const source = translatePattern(pattern);
  try {
    return new RegExp(source, 'gu');
  } catch (e) {
    throw new TroupeError(
      'UNSUPPORTED',
      `Pre-tokenizer regex ${JSON.stringify(pattern)} is not valid as a JS RegExp after translation (${(e as Error).message})`,
      { details: { pattern, translated: source }, cause: e },
    );
  }
}

/**
 * Escapes a literal string for a JS RegExp with the `u` flag, which rejects escapes of anything
 * but syntax characters (so `-` stays bare: it is only special inside a class).
 */
export function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}
