import { RandomStream } from '../kernels/random.js';
import type { Constitution } from './constitution.js';
import type { Turn } from './dialogue.js';
import { clamp, ensemble, normalise, parseVote, voteShare } from './labels.js';
import type { CaiModel, Sampling } from './model.js';
import { feedbackPrompt, type Question, reasoningPrompt } from './prompts.js';

/*
 * RL-CAI's labeller (Constitutional AI §4): a feedback model answers, for each pair of responses
 * and each of several comparison principles drawn at random, which response is better; the
 * normalised probabilities of its option letters are the soft label, averaged over the
 * principles. Chain-of-thought mode reasons first and clamps each label to [0.4, 0.6]. A model
 * with no log-probs (an endpoint without them) gets its labels from sampled votes instead.
 */

export interface FeedbackOptions {
  readonly seed: number;
  /** Principles per pair (the ensemble). */
  readonly principles: number;
  readonly chainOfThought: boolean;
  /** The clamp of chain-of-thought labels. */
  readonly clamp: readonly [number, number];
  /** Samples per question when the model gives no log-probs. */
  readonly votes: number;
  /** Few-shot feedback examples prepended. */
  readonly shots: number;
  /** Sampling of the reasoning (chain of thought) and of votes. */
  readonly reasoningTokens: number;
  readonly temperature: number;
  /** Show the two responses in a random order per principle (position bias). */
  readonly shuffleOrder: boolean;
}

/** One principle's verdict on a pair. */
export interface Judgement {
  /** Index into the constitution's comparisons. */
  readonly principle: number;
  /** Whether the pair's first response was shown as (A). */
  readonly firstIsA: boolean;
  /** P(the pair's first response is better) from this verdict, after any clamp. */
  readonly p: number;
  /** P(option A) as the model gave it, before mapping and clamping. */
  readonly pA: number;
  readonly source: 'logprobs' | 'votes';
  readonly reasoning?: string;
  /** Votes: how many of the samples named an option. */
  readonly validVotes?: number;
}

export interface PairToLabel {
  /** The item's index in the prompt set: its draws are keyed by it. */
  readonly index: number;
  readonly turns: readonly Turn[];
  readonly responses: readonly [string, string];
}

export interface Label {
  /** P(responses[0] ≻ responses[1]): the mean of the judgements' p. */
  readonly prob: number;
  readonly judgements: Judgement[];
}

/** The principles and orders of one pair: drawn from the pair's own stream (resumable). */
function drawsOf(c: Constitution, o: FeedbackOptions, index: number) {
  const s = RandomStream.of({ seed: o.seed, step: index, actor: 'cai', purpose: 'feedback' });
  const order = s.shuffle(c.comparisons.map((_, i) => i));
  // More principles than the constitution has: cycle through it again.
  const picks = Array.from({ length: o.principles }, (_, k) => order[k % order.length]);
  return picks.map((principle) => ({
    principle,
    firstIsA: o.shuffleOrder ? s.nextInt(2) === 0 : true,
  }));
}

export class Labeller {
  /** Questions answered by votes so far (the model gave no log-probs). */
  votedQuestions = 0;
  private told = false;

  constructor(
    private readonly model: CaiModel,
    private readonly c: Constitution,
    private readonly o: FeedbackOptions,
    private readonly log: (message: string) => void = () => {},
  ) {}

  /** Labels for a batch of pairs; `step` keys the batch's sampling streams. */
  async label(pairs: readonly PairToLabel[], step: number): Promise<Label[]> {
    const qs = pairs.flatMap((pair) =>
      drawsOf(this.c, this.o, pair.index).map((d) => ({
        pair,
        d,
        q: {
          turns: pair.turns,
          principle: this.c.comparisons[d.principle],
          a: d.firstIsA ? pair.responses[0] : pair.responses[1],
          b: d.firstIsA ? pair.responses[1] : pair.responses[0],
        } satisfies Question,
      })),
    );
    const reasoning = this.o.chainOfThought
      ? await this.model.generate(
          qs.map((x) => reasoningPrompt(this.c, x.q, this.o.shots)),
          this.sampling(step, 'feedback-reasoning', this.o.reasoningTokens),
        )
      : undefined;
    // Every question at once: an endpoint runs them `concurrency` at a time.
    const answers = await Promise.all(
      qs.map((x, i) =>
        this.optionA(
          feedbackPrompt(this.c, x.q, { shots: this.o.shots, reasoning: reasoning?.[i] }),
          step,
          i,
        ),
      ),
    );
    const judgements: Judgement[] = [];
    for (const [i, x] of qs.entries()) {
      const { pA, source, validVotes } = answers[i];
      const p0 = x.d.firstIsA ? pA : 1 - pA;
      const p = this.o.chainOfThought ? clamp(p0, this.o.clamp[0], this.o.clamp[1]) : p0;
      judgements.push({
        principle: x.d.principle,
        firstIsA: x.d.firstIsA,
        p,
        pA,
        source,
        ...(reasoning ? { reasoning: reasoning[i] } : {}),
        ...(validVotes === undefined ? {} : { validVotes }),
      });
    }
    const K = this.o.principles;
    return pairs.map((_, j) => {
      const js = judgements.slice(j * K, (j + 1) * K);
      return { prob: ensemble(js.map((x) => x.p)), judgements: js };
    });
  }

  private sampling(step: number, purpose: string, maxTokens: number): Sampling {
    return {
      maxTokens,
      temperature: this.o.temperature,
      topP: 1,
      key: { seed: this.o.seed, step, purpose },
    };
  }

  /** P(option A) from the option log-probs, or from sampled votes where there are none. */
  private async optionA(
    prompt: ReturnType<typeof feedbackPrompt>,
    step: number,
    question: number,
  ): Promise<{ pA: number; source: Judgement['source']; validVotes?: number }> {
    const options = this.c.feedback.options;
    const scores = await this.model.optionLogprobs(prompt, options);
    if (scores) return { pA: normalise(scores.logprobs)[0], source: 'logprobs' };
    if (!this.told) {
      this.told = true;
      this.log(
        `${this.model.describe} gives no log-probs for the option letters: labels come from ${this.o.votes} sampled votes per question instead (records say source: votes)`,
      );
    }
    this.votedQuestions++;
    const answers = await this.model.generate(
      Array.from({ length: this.o.votes }, () => prompt),
      this.sampling(step, `feedback-votes-${question}`, 8),
    );
    const { p, valid } = voteShare(answers.map((a) => parseVote(a, options)));
    return { pA: p, source: 'votes', validVotes: valid };
  }
}
