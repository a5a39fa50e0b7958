import { TroupeError } from '../../errors.js';
import { type TokenizeChatOptions, type TokenizedChat, tokenizeChat } from '../chat.js';
import type { Example, PreferenceExample } from '../datasets/formats.js';
import { type DataLocation, dataError } from '../datasets/location.js';
import type { ChatMessage } from '../messages.js';
import type { TokenizerLike } from '../tokenizer/types.js';
import { checkLengthOptions, fitLength, type LengthOptions, truncatePrompt } from './length.js';

export interface TokenizeOptions extends LengthOptions {
  /** How conversations are rendered (template, end-of-turn marker, template variables). */
  readonly chat?: TokenizeChatOptions;
  /** Append the EOS token to string replies and texts (the model must learn to stop). Default true. */
  readonly appendEos?: boolean;
}

/** An SFT example as tokens. */
export interface SftItem {
  /** [T] token ids. */
  readonly ids: number[];
  /** [T] 1 on the targets that count: the completion, or the assistant turns, or (text) all. */
  readonly lossMask: Uint8Array;
  readonly where?: DataLocation;
}

/**
 * One SFT example → ids and a loss mask on the reply only. `text` rows train on every token;
 * `completion` rows on the completion (and EOS); `messages` rows on the assistant turns (and
 * their end-of-turn tokens, see `tokenizeChat`); a conversational completion on the assistant
 * turns of its completion. Returns undefined when the example is over-long and `overlong` is
 * 'drop'.
 */
export function tokenizeSft(
  tokenizer: TokenizerLike,
  example: Example,
  opts: TokenizeOptions = {},
): SftItem | undefined {
  checkLengthOptions(opts, 'tokenizeSft');
  const { where } = example;
  let ids: number[];
  let mask: Uint8Array;
  let promptLength: number;
  switch (example.kind) {
    case 'text': {
      ids = [...tokenizer.encode(example.text), ...eos(tokenizer, opts)];
      mask = new Uint8Array(ids.length).fill(1);
      promptLength = 0;
      break;
    }
    case 'messages': {
      const chat = tokenizeChat(tokenizer, example.messages, opts.chat);
      ids = chat.ids;
      mask = chat.assistantMask;
      promptLength = firstMarked(mask);
      break;
    }
    case 'completion': {
      const parts = example.conversational
        ? chatParts(tokenizer, example.prompt, example.completion, opts)
        : stringParts(tokenizer, example.prompt, example.completion, opts);
      ({ ids, mask, promptLength } = parts);
      break;
    }
    default:
      throw dataError(
        where,
        `SFT trains on rows with a 'completion' (and a 'prompt'), a 'text' or 'messages'; this row ` +
          (example.kind === 'preference'
            ? "is a preference pair ('chosen', 'rejected'): train it with rm or dpo, or read " +
              "'chosen' as the completion with data.columns: { chosen: completion }"
            : "has a 'prompt' but no 'completion' column (prompt-only rows are for RL): add one, " +
              'or rename the column that holds it with data.columns: { answer: completion }'),
        { kind: example.kind },
      );
  }
  if (mask.indexOf(1) < 0) {
    // Nothing to learn from (and a batch of such rows has no target at all).
    throw dataError(
      where,
      example.kind === 'messages'
        ? "this conversation has no 'assistant' message: SFT trains on the assistant's turns"
        : "this row's completion has no 'assistant' message: SFT trains on the assistant's turns",
      { kind: example.kind },
    );
  }
  const keep = fitLength(ids.length, promptLength, opts, where);
  if (keep === undefined) return undefined;
  return withWhere({ ids: ids.slice(0, keep), lossMask: mask.slice(0, keep) }, where);
}

/** A preference pair as tokens: both sequences start with the same prompt tokens. */
export interface PreferenceItem {
  /** [Tc] prompt then chosen reply. */
  readonly chosen: number[];
  /** [Tr] prompt then rejected reply. */
  readonly rejected: number[];
  /** [Tc] 1 on the chosen reply's tokens that count. */
  readonly chosenMask: Uint8Array;
  /** [Tr] 1 on the rejected reply's tokens that count. */
  readonly rejectedMask: Uint8Array;
  /** How many tokens at the start of both are the prompt. */
  readonly promptLength: number;
  readonly where?: DataLocation;
}

/**
 * A preference row → (chosen ids, rejected ids, prompt length) with reply masks. The prompt is
 * cut to `maxPromptLength` (by `promptTruncation`); then each sequence over `maxLength` is
 * handled by `overlong` ('truncate' cuts the end of the reply). Undefined when dropped.
 */
export function tokenizePreference(
  tokenizer: TokenizerLike,
  example: PreferenceExample,
  opts: TokenizeOptions = {},
): PreferenceItem | undefined {
  checkLengthOptions(opts, 'tokenizePreference');
  if (example.kind !== 'preference') {
    throw dataError(
      (example as Example).where,
      `expected a preference row ('chosen' and 'rejected', and a 'prompt' or a shared start), ` +
        `got a ${(example as Example).kind} row`,
      { kind: (example as Example).kind },
    );
  }
  const c = example.conversational
    ? chatParts(tokenizer, example.prompt, example.chosen, opts)
    : stringParts(tokenizer, example.prompt, example.chosen, opts);
  const r = example.conversational
    ? chatParts(tokenizer, example.prompt, example.rejected, opts)
    : stringParts(tokenizer, example.prompt, example.rejected, opts);
  const p = c.promptLength;
  if (p !== r.promptLength || c.ids.slice(0, p).some((id, i) => id !== r.ids[i])) {
    throw new TroupeError(
      'UNSUPPORTED',
      'tokenizePreference: the chat template renders the prompt differently before the chosen ' +
        'and the rejected reply, so they share no prompt tokens',
      { details: { ...(example.where ?? {}) } },
    );
  }
  const keepC = fitLength(c.ids.length, p, opts, example.where);
  const keepR = fitLength(r.ids.length, p, opts, example.where);
  if (keepC === undefined || keepR === undefined) return undefined;
  return withWhere(
    {
      chosen: c.ids.slice(0, keepC),
      rejected: r.ids.slice(0, keepR),
      chosenMask: c.mask.slice(0, keepC),
      rejectedMask: r.mask.slice(0, keepR),
      promptLength: p,
    },
    example.where,
  );
}

/** An RL prompt as tokens, with the row's other columns for the reward functions. */
export interface PromptItem {
  /** [P] the prompt's ids (a conversation ends with the generation prompt). */
  readonly ids: number[];
  /** The prompt as it was in the row. */
  readonly prompt: string | readonly ChatMessage[];
  /** Columns the convention does not use (answers, labels), passed to reward functions. */
  readonly extra: Readonly<Record<string, unknown>>;
  readonly where?: DataLocation;
}

/**
 * The prompt of a row (prompt, completion or preference) → ids ready for generation: a string as
 * encoded (with the tokenizer's BOS), a conversation rendered with its generation prompt. Cut to
 * `maxPromptLength` by `promptTruncation`.
 */
export function tokenizePrompt(
  tokenizer: TokenizerLike,
  example: Example,
  opts: Pick<TokenizeOptions, 'chat' | 'maxPromptLength' | 'promptTruncation'> = {},
): PromptItem {
  checkLengthOptions(opts, 'tokenizePrompt');
  if (example.kind === 'text' || example.kind === 'messages') {
    throw dataError(
      example.where,
      `a ${example.kind} row has no prompt; RL reads rows with a 'prompt' column`,
      { kind: example.kind },
    );
  }
  const ids = example.conversational
    ? tokenizeChat(tokenizer, example.prompt, { ...opts.chat, addGenerationPrompt: true }).ids
    : tokenizer.encode(example.prompt);
  return withWhere(
    { ids: truncatePrompt(ids, opts), prompt: example.prompt, extra: example.extra },
    example.where,
  );
}

interface Parts {
  ids: number[];
  mask: Uint8Array;
  promptLength: number;
}

function stringParts(
  tok: TokenizerLike,
  prompt: string,
  reply: string,
  opts: TokenizeOptions,
): Parts {
  const p = truncatePrompt(tok.encode(prompt), opts);
  const r = [...tok.encode(reply, { addSpecialTokens: false }), ...eos(tok, opts)];
  const mask = new Uint8Array(p.length + r.length);
  mask.fill(1, p.length);
  return { ids: [...p, ...r], mask, promptLength: p.length };
}

/** A conversation prompt and reply: the reply's assistant turns are marked. */
function chatParts(
  tok: TokenizerLike,
  prompt: readonly ChatMessage[],
  reply: readonly ChatMessage[],
  opts: TokenizeOptions,
): Parts {
  const chat: TokenizedChat = tokenizeChat(tok, [...prompt, ...reply], {
    ...opts.chat,
    assistantFrom: prompt.length,
  });
  const first = firstMarked(chat.assistantMask);
  const p = truncatePrompt(chat.ids.slice(0, first), opts);
  const cut = first - p.length;
  return {
    ids: [...p, ...chat.ids.slice(first)],
    mask: chat.assistantMask.slice(cut),
    promptLength: p.length,
  };
}

function firstMarked(mask: Uint8Array): number {
  const i = mask.indexOf(1);
  return i < 0 ? mask.length : i;
}

function eos(tok: TokenizerLike, opts: TokenizeOptions): number[] {
  return opts.appendEos !== false && tok.eosTokenId !== undefined ? [tok.eosTokenId] : [];
}

function withWhere<T extends object>(
  item: T,
  where: DataLocation | undefined,
): T & { where?: DataLocation } {
  return where ? { ...item, where } : item;
}
