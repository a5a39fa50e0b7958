/**
 * Watches the rewards of each source over training iterations and says when one gave every
 * completion of a batch the same reward for `iterations` iterations in a row: its advantages
 * are then zero (GRPO, RLOO) or carry no preference, so the policy learns nothing from it, and
 * the usual cause is a source that can never match (a wrong answer column, a format the
 * normalisation does not accept).
 */
export class ConstantRewardWatch {
  private readonly streaks = new Map<string, number>();

  /**
   * @param iterations identical batches in a row before the warning; it is given once per
   *   streak (again only after the source has varied in between).
   * @param hints a hint per source name, appended to its warning.
   */
  constructor(
    readonly iterations = 3,
    private readonly hints: Readonly<Record<string, string>> = {},
  ) {}

  /** This iteration's unweighted rewards by source; returns the warnings to give now. */
  observe(parts: Readonly<Record<string, ArrayLike<number>>>): string[] {
    const warnings: string[] = [];
    for (const [name, values] of Object.entries(parts)) {
      const constant =
        values.length > 1 && Array.prototype.every.call(values, (v) => v === values[0]);
      const streak = constant ? (this.streaks.get(name) ?? 0) + 1 : 0;
      this.streaks.set(name, streak);
      if (streak === this.iterations) {
        const hint = this.hints[name];
        warnings.push(
          `reward '${name}' gave every completion the same reward (${values[0]}) for ${streak} iterations in a row: ` +
            `its advantages are zero, so the policy learns nothing from it${hint ? `. ${hint}` : ''}`,
        );
      }
    }
    return warnings;
  }
}

/** What to check when a source of this type scores every completion alike. */
export function constantRewardHint(type: string): string | undefined {
  if (type === 'exact-match')
    return "Check its 'column' (the reference answers) and 'normalize' against a few completions";
  if (type === 'regex') return "Check its 'pattern' against a few completions";
  return undefined;
}
