import { tokenizeChat } from '../data/chat.js';
import type { ChatMessage } from '../data/messages.js';
import { loadTokenizer } from '../data/tokenizer/index.js';
import type { TokenizerLike } from '../data/tokenizer/types.js';
import { RandomStream } from '../kernels/random.js';
import { generate } from '../policy/generate.js';
import { loadModel } from '../policy/io.js';
import type { CausalLM } from '../policy/model/causal-lm.js';
import { positionLimit } from '../policy/model/rope.js';
import { tokenLogprobs } from '../policy/score.js';
import { describeModelSource, resolveModelSource } from '../policy/source.js';
import { cutAtStop } from './dialogue.js';
import type { CaiModel, ModelPrompt, OptionScores, Sampling } from './model.js';

/*
 * A Troupe checkpoint (a model directory, a LoRA checkpoint or a run directory) as a CAI model,
 * on this thread's tensor runtime: batched KV-cache generation (policy/generate.ts) and
 * teacher-forced option log-probs (policy/score.ts, what `troupe logprobs` computes).
 */

/** Turn markers of chat templates, which end a generated turn as EOS does. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<end_of_turn>', '<|end|>'];

export interface LocalModelOptions {
  /** Render conversations with the tokenizer's chat template (ChatML without one), not as text. */
  readonly chat: boolean;
  /** Text that ends a generation (cut after decoding). */
  readonly stop: readonly string[];
  /** Told of prompts cut to fit the model's context. */
  readonly log?: (message: string) => void;
}

export class LocalModel implements CaiModel {
  private truncated = 0;

  private constructor(
    readonly describe: string,
    private readonly model: CausalLM,
    private readonly tok: TokenizerLike,
    private readonly o: LocalModelOptions,
  ) {}

  /** Load the model `path` names; `field` names it in errors (`rl.feedback`). */
  static async load(path: string, field: string, o: LocalModelOptions): Promise<LocalModel> {
    const source = await resolveModelSource(path, { field });
    const [model, tok] = await Promise.all([
      loadModel(source),
      loadTokenizer(source.tokenizerDir ?? source.dir),
    ]);
    return new LocalModel(`troupe model ${path}: ${describeModelSource(source)}`, model, tok, o);
  }

  /** Token ids of a prompt, the oldest tokens dropped where it leaves fewer than `room` positions. */
  private encode(p: ModelPrompt, room: number): number[] {
    const ids =
      this.o.chat && !p.plain
        ? tokenizeChat(this.tok, p.messages as ChatMessage[], { addGenerationPrompt: true }).ids
        : this.tok.encode(p.text);
    const keep = positionLimit(this.model.config) - room;
    if (ids.length <= keep) return ids;
    if (this.truncated++ === 0)
      this.o.log?.(
        `${this.describe}: a prompt of ${ids.length} tokens was cut to its last ${keep} (the context is ${positionLimit(this.model.config)} positions); later cuts are counted, not logged`,
      );
    return ids.slice(ids.length - keep);
  }

  /** Prompts whose start was cut to fit the context, so far. */
  get truncatedPrompts(): number {
    return this.truncated;
  }

  async generate(prompts: readonly ModelPrompt[], s: Sampling): Promise<string[]> {
    const limit = positionLimit(this.model.config);
    const maxNew = Math.min(s.maxTokens, Math.max(1, limit - 1));
    const ids = prompts.map((p) => this.encode(p, maxNew));
    const stops = [this.tok.eosTokenId, ...END_OF_TURN.map((t) => this.tok.tokenToId(t))].filter(
      (x): x is number => x !== undefined,
    );
    const out = await generate(this.model, ids, {
      maxNewTokens: maxNew,
      temperature: s.temperature,
      topP: s.topP,
      stopTokenIds: stops,
      rng: RandomStream.of({ ...s.key, actor: 'cai' }),
    });
    return out.responses.map((r) =>
      cutAtStop(this.tok.decode(r.filter((t) => !stops.includes(t))), this.o.stop),
    );
  }

  /** Σ log P(option tokens | prompt text), each option scored after the same prompt tokens. */
  async optionLogprobs(prompt: ModelPrompt, options: readonly string[]): Promise<OptionScores> {
    const opts = options.map((o) => this.tok.encode(o, { addSpecialTokens: false }));
    const longest = Math.max(...opts.map((o) => o.length));
    const head = this.encode({ ...prompt, plain: true }, longest);
    const rows = opts.map((o) => [...head, ...o]);
    const lps = await tokenLogprobs(this.model, rows);
    // lps[k][t] = log P(row[t + 1] | row[..t]): the option's tokens are the last o.length targets.
    return {
      logprobs: lps.map((lp) => lp.slice(head.length - 1).reduce((a, b) => a + b, 0)),
    };
  }

  dispose(): void {
    this.model.dispose();
  }
}
