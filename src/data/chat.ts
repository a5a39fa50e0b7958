import type { Template } from '@huggingface/jinja';
import { TroupeError } from '../errors.js';
import { compileTemplate, pythonGlobals } from './jinja-python.js';
import { type ChatMessage, conversationProblem } from './messages.js';
import type { TokenizerLike } from './tokenizer/types.js';

/**
 * ChatML, the template used when a tokenizer brings none:
 *
 *   <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n
 *
 * A generation prompt is the open header `<|im_start|>assistant\n`.
 */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** Markers that close a turn in common templates, looked for in a template (in this order). */
const END_OF_TURN_MARKERS = ['<|im_end|>', '<|eot_id|>', '<end_of_turn>', '<|end|>'];

export interface ChatTemplateOptions {
  /** End with an open assistant header, so that a model continues as the assistant. Default false. */
  readonly addGenerationPrompt?: boolean;
  /** The template's `bos_token` (templates such as Llama's write it themselves). Default ''. */
  readonly bosToken?: string;
  /** The template's `eos_token`. Default ''. */
  readonly eosToken?: string;
  /** Any other template variable, passed under its own name (`tools`, `enable_thinking`, …). */
  readonly [variable: string]: unknown;
}

const compiled = new Map<string, Template>();

function compile(template: string): Template {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = compileTemplate(template);
    } catch (cause) {
      throw new TroupeError('BAD_ARGUMENT', `Chat template does not parse: ${message(cause)}`, {
        cause,
      });
    }
    compiled.set(template, t);
  }
  return t;
}

/**
 * Render a conversation with a Jinja chat template (the `chat_template` of a Hugging Face
 * tokenizer_config.json), as `apply_chat_template(..., tokenize=False)` does (with Python's
 * `strip` / `lstrip` / `rstrip` and `trim`: see jinja-python.ts).
 */
export function renderChat(
  template: string,
  messages: readonly ChatMessage[],
  opts: ChatTemplateOptions = {},
): string {
  const problem = conversationProblem(messages);
  if (problem) {
    throw new TroupeError('BAD_ARGUMENT', `renderChat: ${problem}`, { details: { problem } });
  }
  try {
    return compile(template).render(templateContext(messages, opts));
  } catch (cause) {
    if (cause instanceof TroupeError) throw cause;
    throw new TroupeError(
      'BAD_ARGUMENT',
      `renderChat: the chat template failed: ${message(cause)}`,
      {
        cause,
      },
    );
  }
}

/** The variables a chat template sees, named as Hugging Face names them. */
function templateContext(
  messages: readonly ChatMessage[],
  opts: ChatTemplateOptions,
): Record<string, unknown> {
  const { addGenerationPrompt = false, bosToken = '', eosToken = '', ...extra } = opts;
  return {
    ...extra,
    ...pythonGlobals(),
    messages,
    add_generation_prompt: addGenerationPrompt,
    bos_token: bosToken,
    eos_token: eosToken,
  };
}

export interface TokenizeChatOptions extends ChatTemplateOptions {
  /** The Jinja template; default the tokenizer's `chatTemplate`, else `CHATML_TEMPLATE`. */
  readonly template?: string;
  /**
   * The text that closes an assistant turn, included in its mask (the model must learn to stop).
   * Default: the first of `<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `<|end|>` that the
   * template contains, else the EOS token.
   */
  readonly endOfTurn?: string;
  /** Mark only assistant messages at this index or later (a prompt's turns are context). Default 0. */
  readonly assistantFrom?: number;
}

export interface TokenizedChat {
  /** Token ids of the rendered conversation. */
  readonly ids: number[];
  /** [ids.length] 1 on the tokens of assistant turns (their reply and end-of-turn token). */
  readonly assistantMask: Uint8Array;
  /** The rendered text. */
  readonly text: string;
}

/**
 * Render and tokenize a conversation, marking the tokens the assistant produced (TRL's
 * `assistant_only_loss`).
 *
 * How the assistant's tokens are found. The conversation is rendered once. For each assistant
 * message i, the prefix `messages[:i]` is rendered with a generation prompt: where the full text
 * starts with it (the template renders prefixes stably), the assistant's part begins right after
 * it — so text a template adds to a reply (Qwen3's `<think>` block on the last turn) is marked,
 * being what the model would generate there. Where the text does not start with it (Qwen3 with
 * `enable_thinking: false`), the part begins where the message's content (or its trimmed content)
 * is found after the shared prefix. Either way it ends after the first end-of-turn marker that
 * follows the content and comes before the next message's content, or at the end of the content
 * when there is none. Character spans are then turned into tokens by tokenizing the text piece by
 * piece, cut at the span edges, so that no token straddles an edge. The prompt part is therefore
 * tokenized exactly as it will be at generation time; it can differ from `encode(text)` only
 * where the tokenizer would have merged across an edge (e.g. `\n\n` before a reply with GPT-2).
 */
export function tokenizeChat(
  tokenizer: TokenizerLike,
  messages: readonly ChatMessage[],
  opts: TokenizeChatOptions = {},
): TokenizedChat {
  const { template: given, endOfTurn: eot, assistantFrom = 0, ...renderOpts } = opts;
  const template = given ?? tokenizer.chatTemplate ?? CHATML_TEMPLATE;
  const tokenText = (id: number | undefined) =>
    id === undefined ? undefined : tokenizer.idToToken(id);
  const withTokens: ChatTemplateOptions = {
    ...renderOpts,
    bosToken: renderOpts.bosToken ?? tokenText(tokenizer.bosTokenId) ?? '',
    eosToken: renderOpts.eosToken ?? tokenText(tokenizer.eosTokenId) ?? '',
  };
  const endOfTurn =
    eot ?? END_OF_TURN_MARKERS.find((m) => template.includes(m)) ?? withTokens.eosToken ?? '';
  const text = renderChat(template, messages, withTokens);
  // The conversation before message i with a generation prompt; undefined where the template
  // cannot render it (an empty conversation, or a template that refuses a partial one).
  const promptOf = (i: number): string | undefined => {
    try {
      const head = messages.slice(0, i);
      return compile(template).render(
        templateContext(head, { ...withTokens, addGenerationPrompt: true }),
      );
    } catch {
      return undefined;
    }
  };
  const spans = assistantSpans(text, messages, promptOf, endOfTurn, assistantFrom);

  const ids: number[] = [];
  const marks: number[] = [];
  const piece = (from: number, to: number, mark: number) => {
    if (to <= from) return;
    const part = tokenizer.encode(text.slice(from, to), { addSpecialTokens: false });
    for (const id of part) {
      ids.push(id);
      marks.push(mark);
    }
  };
  let pos = 0;
  for (const [s, e] of spans) {
    piece(pos, s, 0);
    piece(s, e, 1);
    pos = e;
  }
  piece(pos, text.length, 0);
  return { ids, assistantMask: Uint8Array.from(marks), text };
}

/** Character spans [start, end) of the assistant turns in `text` (see `tokenizeChat`). */
function assistantSpans(
  text: string,
  messages: readonly ChatMessage[],
  promptOf: (i: number) => string | undefined,
  endOfTurn: string,
  from: number,
): [number, number][] {
  const spans: [number, number][] = [];
  let floor = 0;
  for (let i = Math.max(0, from); i < messages.length; i++) {
    const { role, content } = messages[i];
    if (role !== 'assistant') continue;
    const prompt = promptOf(i);
    const shared = prompt === undefined ? 0 : commonPrefixLength(prompt, text);
    let start: number;
    let contentEnd: number;
    if (prompt !== undefined && shared === prompt.length && shared >= floor) {
      start = shared;
      // The content, when the template copies it, lies before this turn's end marker.
      const turnEnd = endOfTurn === '' ? -1 : text.indexOf(endOfTurn, start);
      const at = content === '' ? -1 : text.indexOf(content, start);
      contentEnd = at >= 0 && (turnEnd < 0 || at < turnEnd) ? at + content.length : start;
    } else {
      const found = findContent(text, content, Math.max(shared, floor));
      if (!found) {
        throw new TroupeError(
          'UNSUPPORTED',
          `tokenizeChat: cannot locate assistant message ${i} in the rendered conversation: the ` +
            'template neither renders the conversation before it as a stable prefix nor copies its ' +
            'content verbatim. Use a template that does one of the two.',
          { details: { index: i } },
        );
      }
      [start, contentEnd] = found;
    }
    const limit = nextContentStart(text, messages, i + 1, contentEnd);
    const k = endOfTurn === '' ? -1 : text.indexOf(endOfTurn, contentEnd);
    const end = k >= 0 && k < limit ? k + endOfTurn.length : contentEnd;
    if (end > start) spans.push([start, end]);
    floor = end;
  }
  return spans;
}

function findContent(text: string, content: string, from: number): [number, number] | undefined {
  for (const c of [content, content.trim()]) {
    if (c === '') continue;
    const at = text.indexOf(c, from);
    if (at >= 0) return [at, at + c.length];
  }
  return undefined;
}

/** Where the next non-empty message content after `from` appears in `text` (else its length). */
function nextContentStart(
  text: string,
  messages: readonly ChatMessage[],
  next: number,
  from: number,
): number {
  for (let j = next; j < messages.length; j++) {
    const found = findContent(text, messages[j].content, from);
    if (found) return found[0];
  }
  return text.length;
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
