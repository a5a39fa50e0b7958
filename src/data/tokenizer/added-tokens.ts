import { escapeRegExp, WHITE_SPACE } from './pattern.js';

/** An entry of tokenizer.json's `added_tokens`: text matched verbatim before BPE sees it. */
export interface AddedToken {
  readonly id: number;
  readonly content: string;
  /** Special tokens are dropped by `decode(ids, { skipSpecialTokens: true })`. */
  readonly special: boolean;
  /** Match only where the token is not inside a word. */
  readonly singleWord: boolean;
  /** Whitespace on that side of a match is swallowed with it. */
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  /** Matched in the normalized text (its content normalized too) rather than the raw text. */
  readonly normalized: boolean;
}

/** Letters, digits and '_', which is what HF's single_word check calls a word character. */
const WORD = '[\\p{Alphabetic}\\p{N}_]';

/** The regex source matching one added token's text with its strip and single-word options. */
function tokenSource(t: AddedToken, text: string): string {
  let s = escapeRegExp(text);
  if (t.singleWord) s = `(?<!${WORD})${s}(?!${WORD})`;
  if (t.lstrip) s = `[${WHITE_SPACE}]*${s}`;
  if (t.rstrip) s = `${s}[${WHITE_SPACE}]*`;
  return s;
}

/**
 * Splits text around added tokens, leftmost match first and, at one position, the longest
 * token first (HF's leftmost-longest rule): the alternation lists longer contents first and JS
 * takes the first alternative that matches.
 */
export class AddedTokenSplitter {
  private readonly re: RegExp | undefined;
  private readonly byContent: ReadonlyMap<string, AddedToken>;
  /** Tokens whose match is more than their content (strip options), tried one by one. */
  private readonly padded: readonly { re: RegExp; token: AddedToken }[];

  /**
   * `textOf` gives the text a token matches: its content, or (for HF's `normalized: true`
   * tokens, matched in normalized text) its content normalized.
   */
  constructor(tokens: readonly AddedToken[], textOf: (t: AddedToken) => string = (t) => t.content) {
    const texts = new Map(tokens.map((t) => [t, textOf(t)]));
    const sorted = tokens
      .filter((t) => texts.get(t)!.length > 0)
      .sort((a, b) => texts.get(b)!.length - texts.get(a)!.length || a.id - b.id);
    this.byContent = new Map(sorted.map((t) => [texts.get(t)!, t]));
    this.re =
      sorted.length === 0
        ? undefined
        : new RegExp(sorted.map((t) => tokenSource(t, texts.get(t)!)).join('|'), 'gu');
    this.padded = sorted
      .filter((t) => t.lstrip || t.rstrip)
      .map((t) => ({ re: new RegExp(`^(?:${tokenSource(t, texts.get(t)!)})$`, 'u'), token: t }));
  }

  /**
   * Calls `onText` for each stretch between added tokens (with its offset in `text`) and
   * `onToken` for each token.
   */
  split(
    text: string,
    onText: (s: string, start: number) => void,
    onToken: (t: AddedToken) => void,
  ): void {
    const re = this.re;
    if (re === undefined) {
      if (text.length > 0) onText(text, 0);
      return;
    }
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index > last) onText(text.slice(last, m.index), last);
      onToken(this.tokenOf(m[0]));
      last = re.lastIndex;
    }
    if (last < text.length) onText(text.slice(last), last);
  }

  private tokenOf(match: string): AddedToken {
    const exact = this.byContent.get(match);
    if (exact !== undefined) return exact;
    const hit = this.padded.find((p) => p.re.test(match));
    // The regex only matches token alternatives, so one of them accounts for the match.
    return hit!.token;
  }
}
