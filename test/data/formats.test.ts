import { describe, expect, it } from 'vitest';
import { extractPrompt } from '../../src/data/datasets/extract-prompt.js';
import { detectFormat, type Example, parseExample } from '../../src/data/datasets/formats.js';
import type { TroupeError } from '../../src/errors.js';
import { thrown } from '../helpers/thrown.js';

const where = { file: 'data/x.jsonl', line: 7 };
const user = (content: string) => ({ role: 'user' as const, content });
const bot = (content: string) => ({ role: 'assistant' as const, content });

function parseError(row: unknown, opts: Parameters<typeof parseExample>[1] = {}): TroupeError {
  return thrown(() => parseExample(row, { where, ...opts }));
}

describe('detectFormat', () => {
  it('detects every convention from its columns', () => {
    expect(detectFormat({ text: 'a', label: 1 })).toBe('text');
    expect(detectFormat({ messages: [] })).toBe('messages');
    expect(detectFormat({ prompt: 'a', completion: 'b' })).toBe('completion');
    expect(detectFormat({ prompt: 'a', chosen: 'b', rejected: 'c' })).toBe('preference');
    expect(detectFormat({ chosen: 'b', rejected: 'c' })).toBe('preference');
    expect(detectFormat({ prompt: 'a', answer: '4' })).toBe('prompt');
    expect(detectFormat({ question: 'a' })).toBeUndefined();
  });

  it('detects a partial match so that parsing can name what is missing', () => {
    expect(detectFormat({ prompt: 'a', chosen: 'b' })).toBe('preference');
    expect(detectFormat({ completion: 'b' })).toBe('completion');
  });
});

describe('parseExample', () => {
  it('reads each kind, passing unused columns through as extra', () => {
    const cases: [Record<string, unknown>, Example][] = [
      [
        { text: 'Call me Ishmael.', label: 1 },
        { kind: 'text', text: 'Call me Ishmael.', extra: { label: 1 } },
      ],
      [
        { messages: [user('Hi'), bot('Hello')] },
        { kind: 'messages', messages: [user('Hi'), bot('Hello')], extra: {} },
      ],
      [
        { prompt: 'Q: ', completion: 'A' },
        { kind: 'completion', conversational: false, prompt: 'Q: ', completion: 'A', extra: {} },
      ],
      [
        { prompt: [user('Hi')], completion: [bot('Hello')] },
        {
          kind: 'completion',
          conversational: true,
          prompt: [user('Hi')],
          completion: [bot('Hello')],
          extra: {},
        },
      ],
      [
        { prompt: 'Review:', chosen: ' Great.', rejected: ' Awful.', id: 3 },
        {
          kind: 'preference',
          implicitPrompt: false,
          conversational: false,
          prompt: 'Review:',
          chosen: ' Great.',
          rejected: ' Awful.',
          extra: { id: 3 },
        },
      ],
      [
        { prompt: 'What is 2+2?', answer: '4' },
        { kind: 'prompt', conversational: false, prompt: 'What is 2+2?', extra: { answer: '4' } },
      ],
      [
        { prompt: [user('Hi')] },
        { kind: 'prompt', conversational: true, prompt: [user('Hi')], extra: {} },
      ],
    ];
    for (const [row, want] of cases) expect(parseExample(row)).toEqual(want);
    expect(parseExample({ text: 'a' }, { where }).where).toEqual(where);
  });

  it('extracts an implicit prompt from conversations', () => {
    const row = {
      chosen: [user('Rate it'), bot('Great!')],
      rejected: [user('Rate it'), bot('Awful.')],
    };
    expect(parseExample(row)).toEqual({
      kind: 'preference',
      implicitPrompt: true,
      conversational: true,
      prompt: [user('Rate it')],
      chosen: [bot('Great!')],
      rejected: [bot('Awful.')],
      extra: {},
    });
  });

  it('extracts an implicit prompt from strings, moving the space to the replies (as TRL)', () => {
    expect(extractPrompt('The film was great', 'The film was awful')).toEqual({
      conversational: false,
      prompt: 'The film was',
      chosen: ' great',
      rejected: ' awful',
    });
    expect(extractPrompt('same', 'same')).toBe('chosen and rejected are identical');
    expect(extractPrompt('abc', 'xyz')).toBe('chosen and rejected share no prompt');
    expect(extractPrompt('ab', 'abc')).toMatch(/no reply/);
  });

  it('renames columns first', () => {
    expect(
      parseExample(
        { question: 'Q', answer: 'A' },
        { columns: { question: 'prompt', answer: 'completion' } },
      ),
    ).toEqual({
      kind: 'completion',
      conversational: false,
      prompt: 'Q',
      completion: 'A',
      extra: {},
    });
  });

  it('names file:line, the column and the convention in every error', () => {
    const cases: [unknown, Parameters<typeof parseExample>[1], string][] = [
      [
        { question: 'a' },
        {},
        "data/x.jsonl:7: no known columns (found 'question'); expected one of: " +
          '{"text": string} | {"messages": [{"role", "content"}, ...]} | ' +
          '{"prompt": string or messages, "completion": string or messages} | ' +
          '{"prompt"?: string or messages, "chosen": string or messages, "rejected": string or messages} | ' +
          '{"prompt": string or messages, ...extra columns}. ' +
          "Rename columns with `columns: { yours: 'prompt' }`.",
      ],
      [[1, 2], {}, 'data/x.jsonl:7: expected an object with named columns, got a list'],
      [
        { text: 3 },
        {},
        'data/x.jsonl:7: column \'text\' must be a string, got a number (3): the text convention expects {"text": string}',
      ],
      [
        { messages: [user('a'), { role: 'bot', content: 'b' }] },
        {},
        "data/x.jsonl:7: column 'messages': message 1: 'role' must be one of system, user, assistant, tool, got \"bot\"; " +
          'the messages convention expects {"messages": [{"role", "content"}, ...]}',
      ],
      [
        { prompt: 'a', chosen: 'b' },
        {},
        "data/x.jsonl:7: missing column 'rejected': the preference convention expects " +
          '{"prompt"?: string or messages, "chosen": string or messages, "rejected": string or messages}',
      ],
      [
        { prompt: 'a', completion: [bot('b')] },
        {},
        "data/x.jsonl:7: column 'completion' is a list of messages but the row's other turns are a string; " +
          'within a row they must all be strings or all lists of messages. The completion convention expects ' +
          '{"prompt": string or messages, "completion": string or messages}',
      ],
      [
        { prompt: { text: 'a' } },
        {},
        "data/x.jsonl:7: column 'prompt' must be a string or a list of messages, got an object: " +
          'the prompt convention expects {"prompt": string or messages, ...extra columns}',
      ],
      [
        { chosen: 'abc', rejected: 'xyz' },
        {},
        "data/x.jsonl:7: no 'prompt' column, and chosen and rejected share no prompt; an implicit-prompt row " +
          'needs chosen and rejected that start with the same prompt. The preference convention expects ' +
          '{"prompt"?: string or messages, "chosen": string or messages, "rejected": string or messages}',
      ],
      [
        { query: 'a' },
        { format: 'prompt', columns: { q: 'prompt' } },
        "data/x.jsonl:7: missing column 'prompt' (mapped from 'q' by columns): the prompt convention " +
          'expects {"prompt": string or messages, ...extra columns}',
      ],
      [
        { q: 'a', prompt: 'b' },
        { columns: { q: 'prompt' } },
        "data/x.jsonl:7: column 'q' is renamed to 'prompt', but the row already has a column 'prompt'",
      ],
      [
        { text: 'a' },
        { format: 'completion' },
        "data/x.jsonl:7: missing column 'prompt': the completion convention expects " +
          '{"prompt": string or messages, "completion": string or messages}',
      ],
    ];
    for (const [row, opts, message] of cases) {
      const e = parseError(row, opts);
      expect(e.message).toBe(message);
      expect(e.code).toBe('BAD_DATA');
      expect(e.details).toMatchObject(where);
    }
    expect(parseError({ text: 3 }).details).toMatchObject({ column: 'text' });
  });

  it('names a row of a Parquet file by its index', () => {
    const e = parseError({ text: null }, { where: { file: 'd.parquet', row: 12 } });
    expect(e.message).toMatch(/^d\.parquet row 12: column 'text' must be a string, got null/);
  });

  it('refuses an unknown format with the known ones', () => {
    const e = parseError({ text: 'a' }, { format: 'chat' as never });
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(
      "Unknown dataset format 'chat'. Known: text, messages, completion, preference, prompt.",
    );
  });
});
