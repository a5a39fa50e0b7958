import type { ChatMessage } from '../data/messages.js';
import { RandomStream } from '../kernels/random.js';
import { boilerplatePatterns, type Constitution } from './constitution.js';
import { renderText, stripBoilerplate, type Turn } from './dialogue.js';
import type { CaiModel, Sampling } from './model.js';
import { conversationPrompt, critiqueTurns, revisionTurns } from './prompts.js';
import type { DataStage } from './stage.js';

/*
 * SL-CAI (Constitutional AI §3): a model answers red-team prompts; then, for N rounds, it is
 * asked to critique its latest response under a principle drawn at random (seeded per prompt)
 * and to revise it; revisions lose their boilerplate preamble. The final revisions become SFT
 * data (mixed with helpful samples), and (prompt, revision ≻ original) pairs are written for DPO.
 */

export interface SlOptions {
  readonly seed: number;
  readonly revisions: number;
  /** Few-shot revision examples prepended to each request. */
  readonly shots: number;
  readonly maxTokens: number;
  readonly temperature: number;
  readonly topP: number;
}

export interface SlRound {
  /** The critique/revision pair drawn (its name, or its index). */
  readonly principle: string;
  readonly critique: string;
  /** The revision as generated, and the preamble stripped from it ('' when none). */
  readonly raw: string;
  readonly removed: string;
  /** The revision kept (the previous response when it came out empty). */
  readonly revision: string;
}

/** One red-team prompt's record in sl-data/records.jsonl. */
export interface SlRecord {
  readonly index: number;
  readonly prompt: string | ChatMessage[];
  readonly initial: string;
  readonly rounds: SlRound[];
  readonly final: string;
}

export interface PromptItem {
  readonly prompt: string | ChatMessage[];
  readonly turns: Turn[];
}

/** The stage over `prompts`: the batch logic; the run directory is `runDataStage`'s. */
export function slStage(
  model: CaiModel,
  c: Constitution,
  prompts: readonly PromptItem[],
  o: SlOptions,
  batchSize: number,
): DataStage<SlRecord> {
  const patterns = boilerplatePatterns(c);
  const sampling = (step: number, purpose: string): Sampling => ({
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    topP: o.topP,
    key: { seed: o.seed, step, purpose },
  });
  return {
    name: 'sl-data',
    items: prompts.length,
    batchSize,
    async runBatch(step, lo, hi) {
      const items = prompts.slice(lo, hi);
      const picks = items.map((_, j) => {
        const s = RandomStream.of({
          seed: o.seed,
          step: lo + j,
          actor: 'cai',
          purpose: 'critique',
        });
        return Array.from({ length: o.revisions }, () => s.nextInt(c.critiques.length));
      });
      let current = await model.generate(
        items.map((it) => conversationPrompt(c, it.turns, o.shots)),
        sampling(step, 'sl-response'),
      );
      const initial = current;
      const rounds: SlRound[][] = items.map(() => []);
      for (let r = 0; r < o.revisions; r++) {
        const pairs = picks.map((p) => c.critiques[p[r]]);
        const critiques = await model.generate(
          items.map((it, j) =>
            conversationPrompt(c, critiqueTurns(it.turns, current[j], pairs[j]), o.shots),
          ),
          sampling(step, `sl-critique-${r}`),
        );
        const raws = await model.generate(
          items.map((it, j) =>
            conversationPrompt(
              c,
              revisionTurns(it.turns, current[j], pairs[j], critiques[j]),
              o.shots,
            ),
          ),
          sampling(step, `sl-revision-${r}`),
        );
        current = raws.map((raw, j) => {
          const { text, removed } = stripBoilerplate(raw, patterns);
          const revision = text === '' ? current[j] : text;
          rounds[j].push({
            principle: pairs[j].name ?? String(picks[j][r]),
            critique: critiques[j],
            raw,
            removed,
            revision,
          });
          return revision;
        });
      }
      return items.map((it, j) => ({
        index: lo + j,
        prompt: it.prompt,
        initial: initial[j],
        rounds: rounds[j],
        final: current[j],
      }));
    },
    metrics(records, seconds) {
      const rounds = records.flatMap((r) => r.rounds);
      return {
        prompts: records.length,
        revisions: rounds.length,
        stripped_fraction:
          rounds.filter((x) => x.removed !== '').length / Math.max(1, rounds.length),
        empty_revisions: rounds.filter((x) => x.raw.trim() === '' || x.revision === '').length,
        changed_fraction:
          records.filter((r) => r.final !== r.initial).length / Math.max(1, records.length),
        seconds,
      };
    },
  };
}

export type DialogueMode = 'text' | 'chat';

/** A prompt and a reply as a row of the completion convention, in the dialogue's form. */
export function completionRow(
  c: Constitution,
  mode: DialogueMode,
  turns: readonly Turn[],
  reply: string,
): Record<string, unknown> {
  return mode === 'chat'
    ? { prompt: turns, completion: [{ role: 'assistant', content: reply }] }
    : { prompt: renderText(c.dialogue, turns, true), completion: ` ${reply}` };
}

/** A prompt with two replies as a preference row (the `chosen_prob` label, when given). */
export function preferenceRow(
  c: Constitution,
  mode: DialogueMode,
  turns: readonly Turn[],
  chosen: string,
  rejected: string,
  chosenProb?: number,
): Record<string, unknown> {
  const label = chosenProb === undefined ? {} : { chosen_prob: chosenProb };
  return mode === 'chat'
    ? {
        prompt: turns,
        chosen: [{ role: 'assistant', content: chosen }],
        rejected: [{ role: 'assistant', content: rejected }],
        ...label,
      }
    : {
        prompt: renderText(c.dialogue, turns, true),
        chosen: ` ${chosen}`,
        rejected: ` ${rejected}`,
        ...label,
      };
}

/**
 * The SFT rows of the revisions (the final one of each prompt, or every round's with `all`)
 * and the DPO pairs (final revision ≻ initial response, where the two differ).
 */
export function slOutputs(
  c: Constitution,
  mode: DialogueMode,
  records: readonly SlRecord[],
  turnsOf: (r: SlRecord) => Turn[],
  keep: 'final' | 'all',
): { sft: Record<string, unknown>[]; pairs: Record<string, unknown>[] } {
  const sft = records.flatMap((r) =>
    (keep === 'all' ? r.rounds.map((x) => x.revision) : [r.final]).map((reply) =>
      completionRow(c, mode, turnsOf(r), reply),
    ),
  );
  const pairs = records
    .filter((r) => r.final !== r.initial && r.final !== '' && r.initial !== '')
    .map((r) => preferenceRow(c, mode, turnsOf(r), r.final, r.initial));
  return { sft, pairs };
}

/** How many helpful rows go with `n` revision rows for a fraction f of helpful rows: n·f/(1−f). */
export function helpfulCount(n: number, fraction: number): number {
  return fraction <= 0 ? 0 : Math.round((n * fraction) / (1 - fraction));
}
