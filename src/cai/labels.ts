/*
 * The arithmetic of AI-feedback labels (Constitutional AI §4.1–4.2), pure: option log-probs →
 * normalised probabilities, the chain-of-thought clamp, sampled votes, ensembling.
 */

/** softmax over the options' log-probs: P(option k) normalised over the options alone. */
export function normalise(logprobs: readonly number[]): number[] {
  const m = Math.max(...logprobs);
  if (!Number.isFinite(m)) return logprobs.map(() => 1 / logprobs.length);
  const e = logprobs.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * p clamped to [lo, hi]: chain-of-thought answers are near-certain once the reasoning has
 * committed to one, so the paper clamps their probabilities to 40–60 % (§4.2).
 */
export function clamp(p: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, p));
}

/**
 * The option a sampled answer picks: the first `(X)`, else the first standalone letter X, among
 * the options; undefined when it names none (or opens with two).
 */
export function parseVote(text: string, options: readonly string[]): number | undefined {
  const esc = options.map((o) => o.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const paren = new RegExp(`\\((${esc.join('|')})\\)`).exec(text);
  if (paren) return options.indexOf(paren[1]);
  const bare = new RegExp(`(?:^|[^\\p{L}\\p{N}])(${esc.join('|')})(?![\\p{L}\\p{N}])`, 'u').exec(
    text,
  );
  return bare ? options.indexOf(bare[1]) : undefined;
}

/**
 * P(first option) from votes: the fraction of parsed votes for it, or 0.5 when none parsed.
 * `valid` counts the votes that named an option.
 */
export function voteShare(votes: readonly (number | undefined)[]): { p: number; valid: number } {
  const valid = votes.filter((v) => v !== undefined);
  if (valid.length === 0) return { p: 0.5, valid: 0 };
  return { p: valid.filter((v) => v === 0).length / valid.length, valid: valid.length };
}

/** The ensemble's label: the mean of its members' probabilities (§4.1). */
export function ensemble(ps: readonly number[]): number {
  return ps.reduce((a, b) => a + b, 0) / ps.length;
}
