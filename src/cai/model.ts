import { RandomStream } from '../kernels/random.js';
import type { Turn } from './dialogue.js';

/*
 * What the CAI stages ask of a model — write the next turn, or weigh the options of a
 * multiple-choice question — whether it is a Troupe checkpoint (./local-model.ts) or an
 * OpenAI-compatible HTTP endpoint (./endpoint.ts).
 */

/** One prompt in both forms; each model takes the one it reads. */
export interface ModelPrompt {
  /** For chat models: the conversation whose next (assistant) turn is wanted. */
  readonly messages: readonly Turn[];
  /** For completion models: the whole prompt as text, ending where the model continues. */
  readonly text: string;
  /**
   * A plain-text question (the feedback question): Troupe models read `text` even in chat
   * dialogue mode, as the paper's feedback model reads a plain multiple-choice prompt.
   */
  readonly plain?: boolean;
}

/** Where a call's random draws come from: a stream keyed by these (see `RandomStream.of`). */
export interface DrawKey {
  readonly seed: number;
  readonly step: number;
  readonly purpose: string;
}

export interface Sampling {
  readonly maxTokens: number;
  /** 0 = greedy. */
  readonly temperature: number;
  readonly topP: number;
  readonly key: DrawKey;
}

/** Option log-probs, and how they were had. */
export interface OptionScores {
  /** log P(option) for each option, in the order asked (unnormalised). */
  readonly logprobs: number[];
}

export interface CaiModel {
  /** What it is, for logs and metadata: `troupe model runs/x (gpt2)`, `endpoint http://… (chat)`. */
  readonly describe: string;
  /** The next turn for each prompt, cut at the stop sequences. */
  generate(prompts: readonly ModelPrompt[], s: Sampling): Promise<string[]>;
  /**
   * log P(option | prompt) for each option (the letters A, B), or undefined when this model
   * gives no log-probs (an endpoint without them): the caller then samples votes.
   */
  optionLogprobs(
    prompt: ModelPrompt,
    options: readonly string[],
  ): Promise<OptionScores | undefined>;
  dispose(): void;
}

/** One seed per prompt of a call, from its key: what an endpoint's `seed` field gets. */
export function seedsOf(key: DrawKey, n: number): number[] {
  const s = RandomStream.of({ ...key, actor: 'cai-endpoint' });
  return Array.from({ length: n }, () => s.nextInt(2 ** 31 - 1));
}
