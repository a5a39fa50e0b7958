/**
 * HF tokenizers' `NormalizedString::split`, streamed: a pattern's matches and the gaps between
 * them arrive as runs (start, end, isMatch) covering the text, and the behaviour says what
 * becomes of each match. Empty pieces are dropped, as HF drops them. Nothing is collected into
 * arrays: byte-level BPE cuts every megabyte of text into ~300k pieces here.
 */

export const BEHAVIORS = [
  'Removed',
  'Isolated',
  'MergedWithPrevious',
  'MergedWithNext',
  'Contiguous',
] as const;
export type Behavior = (typeof BEHAVIORS)[number];

export type Run = (start: number, end: number, isMatch: boolean) => void;
/** Calls `run` for each match and gap of `text`, in order. */
export type Runs = (text: string, run: Run) => void;

/** A global RegExp's non-empty matches and the gaps between them. */
export const regexRuns =
  (re: RegExp): Runs =>
  (text, run) => {
    re.lastIndex = 0;
    let prev = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex += (text.codePointAt(re.lastIndex) ?? 0) > 0xffff ? 2 : 1;
        continue;
      }
      if (m.index > prev) run(prev, m.index, false);
      prev = m.index + m[0].length;
      run(m.index, prev, true);
    }
    if (prev < text.length) run(prev, text.length, false);
  };

/** Each code point for which `pred` holds is a match of its own (HF's `Fn(char) -> bool`). */
export const charRuns =
  (pred: (cp: number) => boolean): Runs =>
  (text, run) => {
    let prev = 0;
    for (let i = 0; i < text.length; ) {
      const cp = text.codePointAt(i)!;
      const n = cp > 0xffff ? 2 : 1;
      if (pred(cp)) {
        if (prev < i) run(prev, i, false);
        run(i, i + n, true);
        prev = i + n;
      }
      i += n;
    }
    if (prev < text.length) run(prev, text.length, false);
  };

/** Matches become gaps and gaps matches (Split with `invert: true`). */
export const invertRuns =
  (runs: Runs): Runs =>
  (text, run) =>
    runs(text, (s, e, m) => run(s, e, !m));

/** Calls `emit(start, end)` for each non-empty piece the behaviour leaves, in order. */
export function splitText(
  text: string,
  runs: Runs,
  behavior: Behavior,
  emit: (s: number, e: number) => void,
): void {
  const out = (s: number, e: number) => {
    if (e > s) emit(s, e);
  };
  if (behavior === 'Isolated') {
    runs(text, out);
    return;
  }
  if (behavior === 'Removed') {
    runs(text, (s, e, m) => {
      if (!m) out(s, e);
    });
    return;
  }
  // The other behaviours hold one piece back until the next run says where it ends.
  let ps = -1;
  let pe = -1;
  let pm = false;
  const flush = () => {
    if (ps >= 0) out(ps, pe);
    ps = -1;
  };
  if (behavior === 'MergedWithNext') {
    // A match joins the piece after it, unless that is a match too. `ps` holds a match.
    runs(text, (s, e, m) => {
      if (m) {
        flush();
        ps = s;
        pe = e;
      } else if (ps >= 0) {
        out(ps, e);
        ps = -1;
      } else out(s, e);
    });
  } else {
    // Contiguous: runs of the same kind join. MergedWithPrevious: a match joins the gap before it.
    const joins = behavior === 'Contiguous' ? (m: boolean) => m === pm : (m: boolean) => m && !pm;
    runs(text, (s, e, m) => {
      if (ps >= 0 && joins(m)) pe = e;
      else {
        flush();
        ps = s;
        pe = e;
      }
      pm = m;
    });
  }
  flush();
}
