import { TroupeError } from '../../errors.js';
import type { AddedToken } from './added-tokens.js';
import type { Tokenizer } from './tokenizer.js';

/** Special tokens as added tokens with ids 0…, after checking they are distinct and non-empty. */
export function specialAddedTokens(specials: readonly string[], who: string): AddedToken[] {
  if (new Set(specials).size !== specials.length || specials.includes('')) {
    throw new TroupeError('BAD_ARGUMENT', `${who}: specialTokens must be distinct and non-empty`);
  }
  return specials.map((content, id) => ({
    id,
    content,
    special: true,
    singleWord: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
  }));
}

/** Fails unless `token` (when given) is one of the special tokens. */
export function requireSpecial(
  specials: readonly string[],
  token: string | undefined,
  name: string,
  who: string,
): void {
  if (token !== undefined && !specials.includes(token)) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${who}: ${name} ${JSON.stringify(token)} is not one of specialTokens (${specials.join(', ')})`,
    );
  }
}

/**
 * Counts the pre-tokens `tokenizer` would hand its model for each text: the trainers count
 * words through the very normalizer and pre-tokenizer the trained tokenizer.json will have.
 */
export function countWords(tokenizer: Tokenizer, texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const w of tokenizer.preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

/** An integer option within [lo, hi], or BAD_ARGUMENT saying which. */
export function checkInt(v: number, lo: number, hi: number, name: string, who: string): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `${who}: ${name} must be an integer in [${lo}, ${hi}], got ${v}`,
    );
  }
  return v;
}
