import type { Constitution } from './constitution.js';
import type { Judgement, Labeller } from './feedback.js';
import type { CaiModel } from './model.js';
import { conversationPrompt } from './prompts.js';
import { type DialogueMode, type PromptItem, preferenceRow } from './sl.js';
import type { DataStage } from './stage.js';

/*
 * RL-CAI's data (Constitutional AI §4): the SL-CAI model samples two responses to each prompt,
 * and the labeller turns a feedback model's verdicts into P(first ≻ second). The pairs go to the
 * reward model as preference rows with that soft label (`chosen_prob`).
 */

export interface RlSampling {
  readonly seed: number;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
}

/** One prompt's record in rl-data/records.jsonl. */
export interface RlRecord {
  readonly index: number;
  readonly prompt: PromptItem['prompt'];
  readonly responses: [string, string];
  /** Why the pair was not labelled: its two responses are the same. */
  readonly skipped?: 'identical';
  /** P(responses[0] ≻ responses[1]). */
  readonly prob?: number;
  readonly judgements?: Judgement[];
}

export function rlStage(
  sampler: CaiModel,
  labeller: Labeller,
  c: Constitution,
  prompts: readonly PromptItem[],
  o: RlSampling,
  batchSize: number,
): DataStage<RlRecord> {
  return {
    name: 'rl-data',
    items: prompts.length,
    batchSize,
    async runBatch(step, lo, hi) {
      const items = prompts.slice(lo, hi);
      // Both responses of a prompt in one call: rows 2j and 2j + 1.
      const out = await sampler.generate(
        items.flatMap((it) => {
          const p = conversationPrompt(c, it.turns, 0);
          return [p, p];
        }),
        {
          maxTokens: o.maxTokens,
          temperature: o.temperature,
          topP: o.topP,
          key: { seed: o.seed, step, purpose: 'rl-pairs' },
        },
      );
      const pairs = items.map((it, j) => ({
        index: lo + j,
        turns: it.turns,
        responses: [out[2 * j], out[2 * j + 1]] as [string, string],
      }));
      const distinct = pairs.filter((p) => p.responses[0] !== p.responses[1]);
      const labels = await labeller.label(distinct, step);
      const byIndex = new Map(distinct.map((p, k) => [p.index, labels[k]]));
      return pairs.map((p, j): RlRecord => {
        const l = byIndex.get(p.index);
        return l
          ? {
              index: p.index,
              prompt: items[j].prompt,
              responses: p.responses,
              prob: l.prob,
              judgements: l.judgements,
            }
          : {
              index: p.index,
              prompt: items[j].prompt,
              responses: p.responses,
              skipped: 'identical',
            };
      });
    },
    metrics(records, seconds) {
      const labelled = records.filter((r) => r.prob !== undefined);
      const js = labelled.flatMap((r) => r.judgements ?? []);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      return {
        pairs: labelled.length,
        skipped_identical: records.length - labelled.length,
        'label/confidence': mean(labelled.map((r) => Math.abs(r.prob! - 0.5) * 2)),
        'label/first': mean(labelled.map((r) => r.prob!)),
        'label/a_prob': mean(js.map((j) => j.pA)),
        'label/votes_fraction':
          js.filter((j) => j.source === 'votes').length / Math.max(1, js.length),
        seconds,
      };
    },
  };
}

/** Reward-model rows: the more likely preferred response as `chosen`, P(chosen ≻ rejected) ≥ ½. */
export function rmRows(
  c: Constitution,
  mode: DialogueMode,
  records: readonly RlRecord[],
  turnsOf: (r: RlRecord) => PromptItem['turns'],
): Record<string, unknown>[] {
  return records
    .filter((r) => r.prob !== undefined)
    .map((r) => {
      const firstWins = r.prob! >= 0.5;
      const [chosen, rejected] = firstWins ? r.responses : [r.responses[1], r.responses[0]];
      const p = firstWins ? r.prob! : 1 - r.prob!;
      return preferenceRow(c, mode, turnsOf(r), chosen, rejected, p);
    });
}
