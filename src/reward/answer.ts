/**
 * Final-answer extraction for rule-based rewards (GSM8K / MATH style completions).
 */

/** A number with optional sign, thousands commas (`1,234`) and decimals (`2.50`, `.5`). */
const NUMBER = /-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+/g;

/** The content of the last `\boxed{…}` (one level of nested braces), if any. */
export function lastBoxed(text: string): string | undefined {
  const all = [...text.matchAll(/\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}/g)];
  return all.length > 0 ? all[all.length - 1][1] : undefined;
}

/**
 * The completion's final answer as text: the last `\boxed{…}`, else what follows the last
 * `####` (GSM8K), else the whole completion.
 */
export function finalAnswerText(text: string): string {
  const boxed = lastBoxed(text);
  if (boxed !== undefined) return boxed;
  const hashes = text.lastIndexOf('####');
  return hashes >= 0 ? text.slice(hashes + 4) : text;
}

/**
 * The last number in the final answer (`-3`, `1,234` → 1234, `2.50` → 2.5), or undefined when
 * there is none.
 */
export function lastNumber(text: string): number | undefined {
  const matches = finalAnswerText(text).match(NUMBER);
  if (!matches) return undefined;
  const n = Number(matches[matches.length - 1].replaceAll(',', ''));
  return Number.isFinite(n) ? n : undefined;
}

/** Equal up to float noise relative to the expected value (`2.50` equals `2.5`). */
export function numbersEqual(got: number, expected: number): boolean {
  return Math.abs(got - expected) <= 1e-6 * Math.max(1, Math.abs(expected));
}
