import { describe, expect, it } from 'vitest';
import {
  collateBlocks,
  collatePreferences,
  collatePrompts,
  collateSft,
  type PreferenceItem,
  type SftItem,
  tokenizePreference,
  tokenizePrompt,
  tokenizeSft,
} from '../../src/data/batching/index.js';
import { Packer, packDocuments } from '../../src/data/batching/pack.js';
import { type Example, parseExample } from '../../src/data/datasets/formats.js';
import { thrown as error } from '../helpers/thrown.js';
import { gpt2Tokenizer, maskedRuns, SPECIALS } from './helpers.js';

const tok = gpt2Tokenizer();
const EOS = SPECIALS['<|endoftext|>'];
const where = { file: 'sft.jsonl', line: 4 };
const ex = (row: Record<string, unknown>): Example => parseExample(row, { where });
const user = (content: string) => ({ role: 'user' as const, content });
const bot = (content: string) => ({ role: 'assistant' as const, content });

/** Targets lmLoss counts: real token, real predecessor, selected by the loss mask. */
function countedTargets(mask: Uint8Array, lossMask: Uint8Array, T: number): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (i % T > 0 && mask[i] && mask[i - 1] && lossMask[i]) n++;
  return n;
}

describe('tokenizeSft', () => {
  it('a string prompt/completion: loss on the completion and EOS only', () => {
    const item = tokenizeSft(
      tok,
      ex({ prompt: 'Q: Who hunts the whale?\nA:', completion: ' Ahab.' }),
    )!;
    const p = tok.encode('Q: Who hunts the whale?\nA:');
    expect(item.ids).toEqual([...p, ...tok.encode(' Ahab.'), EOS]);
    expect([...item.lossMask]).toEqual([
      ...p.map(() => 0),
      ...tok.encode(' Ahab.').map(() => 1),
      1,
    ]);
    expect(item.where).toEqual(where);
  });

  it('text: loss everywhere; messages: loss on assistant turns', () => {
    const t = tokenizeSft(tok, ex({ text: 'Call me Ishmael.' }))!;
    expect(t.ids).toEqual([...tok.encode('Call me Ishmael.'), EOS]);
    expect(t.lossMask.every((m) => m === 1)).toBe(true);
    const m = tokenizeSft(
      tok,
      ex({ messages: [user('Hi'), bot('Hello'), user('Bye'), bot('Farewell')] }),
    )!;
    expect(maskedRuns(tok, m.ids, m.lossMask)).toEqual(['Hello<|im_end|>', 'Farewell<|im_end|>']);
  });

  it("a conversational completion: loss on the completion's assistant turns only", () => {
    const item = tokenizeSft(
      tok,
      ex({ prompt: [user('Hi'), bot('Hello'), user('Name a ship')], completion: [bot('Pequod')] }),
    )!;
    expect(maskedRuns(tok, item.ids, item.lossMask)).toEqual(['Pequod<|im_end|>']);
  });

  it('over-long examples: error (naming file:line), drop, or truncate keeping the start', () => {
    const row = ex({ prompt: 'one two', completion: ' three four five six' });
    const full = tokenizeSft(tok, row)!;
    expect(full.ids).toHaveLength(7);
    const e = error(() => tokenizeSft(tok, row, { maxLength: 5 }));
    expect(e.code).toBe('BAD_DATA');
    expect(e.message).toBe(
      "sft.jsonl:4: example has 7 tokens, more than maxLength 5; set overlong: 'truncate' or 'drop', or raise maxLength",
    );
    expect(tokenizeSft(tok, row, { maxLength: 5, overlong: 'drop' })).toBeUndefined();
    const cut = tokenizeSft(tok, row, { maxLength: 5, overlong: 'truncate' })!;
    expect(cut.ids).toEqual(full.ids.slice(0, 5));
    expect([...cut.lossMask]).toEqual([0, 0, 1, 1, 1]);
    expect(error(() => tokenizeSft(tok, row, { maxLength: 2, overlong: 'truncate' })).message).toBe(
      'sft.jsonl:4: example has 7 tokens, more than maxLength 2; its prompt alone has 2 tokens, leaving no room for the reply; set maxPromptLength below 2',
    );
  });

  it('cuts prompts keeping the end (default) or the start', () => {
    const row = ex({ prompt: 'a b c d', completion: ' e' });
    const keepEnd = tokenizeSft(tok, row, { maxPromptLength: 2 })!;
    expect(tok.decode(keepEnd.ids)).toBe(' c d e<|endoftext|>');
    const keepStart = tokenizeSft(tok, row, {
      maxPromptLength: 2,
      promptTruncation: 'keep-start',
    })!;
    expect(tok.decode(keepStart.ids)).toBe('a b e<|endoftext|>');
    expect([...keepStart.lossMask]).toEqual([0, 0, 1, 1]);
  });

  it('refuses rows that are not SFT rows, and bad options', () => {
    const pair = error(() => tokenizeSft(tok, ex({ prompt: 'p', chosen: 'a', rejected: 'b' })));
    expect(pair.code).toBe('BAD_DATA');
    expect(pair.message).toMatch(/this row is a preference pair .* train it with rm or dpo/);
    const promptOnly = error(() => tokenizeSft(tok, ex({ prompt: 'p', answer: 'a' })));
    expect(promptOnly.message).toBe(
      "sft.jsonl:4: SFT trains on rows with a 'completion' (and a 'prompt'), a 'text' or " +
        "'messages'; this row has a 'prompt' but no 'completion' column (prompt-only rows are " +
        'for RL): add one, or rename the column that holds it with data.columns: { answer: completion }',
    );
    expect(promptOnly.details).toMatchObject({ file: 'sft.jsonl', line: 4, kind: 'prompt' });
    // A conversation with no assistant turn has no target: refused by its line, not by lmLoss.
    expect(error(() => tokenizeSft(tok, ex({ messages: [user('hi')] }))).message).toBe(
      "sft.jsonl:4: this conversation has no 'assistant' message: SFT trains on the assistant's turns",
    );
    expect(
      error(() => tokenizeSft(tok, ex({ prompt: [user('hi')], completion: [user('again')] })))
        .message,
    ).toBe(
      "sft.jsonl:4: this row's completion has no 'assistant' message: SFT trains on the assistant's turns",
    );
    // An empty string completion still trains on its EOS.
    expect([...tokenizeSft(tok, ex({ prompt: 'a', completion: '' }))!.lossMask]).toEqual([0, 1]);
    expect(error(() => tokenizeSft(tok, ex({ text: 'a' }), { maxLength: 0 })).message).toBe(
      "tokenizeSft: 'maxLength' must be a positive integer, got 0",
    );
  });
});

describe('tokenizePreference', () => {
  it('strings: shared prompt, replies with EOS, masks on the replies', () => {
    const item = tokenizePreference(
      tok,
      ex({ prompt: 'The film was', chosen: ' great', rejected: ' a total bore' }) as never,
    )!;
    const p = tok.encode('The film was');
    expect(item.promptLength).toBe(p.length);
    expect(item.chosen).toEqual([...p, ...tok.encode(' great'), EOS]);
    expect(item.rejected).toEqual([...p, ...tok.encode(' a total bore'), EOS]);
    expect(maskedRuns(tok, item.rejected, item.rejectedMask)).toEqual([
      ' a total bore<|endoftext|>',
    ]);
  });

  it('conversations with an implicit prompt share the prompt tokens', () => {
    const item = tokenizePreference(
      tok,
      ex({
        chosen: [user('Rate it'), bot('Great!')],
        rejected: [user('Rate it'), bot('Dull.')],
      }) as never,
    )!;
    expect(tok.decode(item.chosen.slice(0, item.promptLength))).toBe(
      '<|im_start|>user\nRate it<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(item.rejected.slice(0, item.promptLength)).toEqual(
      item.chosen.slice(0, item.promptLength),
    );
    expect(maskedRuns(tok, item.chosen, item.chosenMask)).toEqual(['Great!<|im_end|>']);
    expect(maskedRuns(tok, item.rejected, item.rejectedMask)).toEqual(['Dull.<|im_end|>']);
  });

  it('truncates the prompt, then over-long replies', () => {
    const row = ex({ prompt: 'a b c d', chosen: ' e f g', rejected: ' h' }) as never;
    const item = tokenizePreference(tok, row, {
      maxPromptLength: 2,
      maxLength: 4,
      overlong: 'truncate',
    })!;
    expect(tok.decode(item.chosen)).toBe(' c d e f');
    expect(tok.decode(item.rejected)).toBe(' c d h<|endoftext|>');
    expect(item.promptLength).toBe(2);
    expect(tokenizePreference(tok, row, { maxLength: 4, overlong: 'drop' })).toBeUndefined();
  });
});

describe('tokenizePrompt', () => {
  it('strings as encoded, conversations with the generation prompt, extra columns kept', () => {
    const s = tokenizePrompt(tok, ex({ prompt: 'Once upon a time', answer: 'x' }));
    expect(s.ids).toEqual(tok.encode('Once upon a time'));
    expect(s.extra).toEqual({ answer: 'x' });
    const c = tokenizePrompt(tok, ex({ prompt: [user('Hi')] }));
    expect(tok.decode(c.ids)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    const cut = tokenizePrompt(tok, ex({ prompt: 'a b c d' }), { maxPromptLength: 3 });
    expect(tok.decode(cut.ids)).toBe(' b c d');
  });
});

describe('collation', () => {
  const items: SftItem[] = [
    { ids: [5, 6, 7, 8], lossMask: Uint8Array.from([0, 0, 1, 1]) },
    { ids: [9, 10], lossMask: Uint8Array.from([0, 1]) },
  ];

  it('right-pads SFT rows; the loss mask is 0 on padding and prompts', () => {
    const { tokens, lossMask } = collateSft(items, { padId: EOS });
    expect(tokens.batch).toBe(2);
    expect(tokens.length).toBe(4);
    expect([...tokens.ids]).toEqual([5, 6, 7, 8, 9, 10, EOS, EOS]);
    expect([...tokens.mask]).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect([...lossMask]).toEqual([0, 0, 1, 1, 0, 1, 0, 0]);
    expect(countedTargets(tokens.mask, lossMask, 4)).toBe(3);
    const eight = collateSft(items, { padId: 0, padToMultipleOf: 8 });
    expect(eight.tokens.length).toBe(8);
    expect(eight.lossMask).toHaveLength(16);
  });

  it('puts chosen rows before rejected rows in one preference batch', () => {
    const pairs: PreferenceItem[] = [
      {
        chosen: [1, 2, 3],
        rejected: [1, 2, 4, 4],
        chosenMask: Uint8Array.from([0, 0, 1]),
        rejectedMask: Uint8Array.from([0, 0, 1, 1]),
        promptLength: 2,
      },
      {
        chosen: [7, 8],
        rejected: [7, 9],
        chosenMask: Uint8Array.from([0, 1]),
        rejectedMask: Uint8Array.from([0, 1]),
        promptLength: 1,
      },
    ];
    const b = collatePreferences(pairs, { padId: 0 });
    expect(b.tokens.batch).toBe(4);
    expect(b.tokens.length).toBe(4);
    expect([...b.tokens.ids]).toEqual([1, 2, 3, 0, 7, 8, 0, 0, 1, 2, 4, 4, 7, 9, 0, 0]);
    expect([...b.lossMask]).toEqual([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0]);
    expect([...b.promptLengths]).toEqual([2, 1]);
  });

  it('left-pads prompts for generation', () => {
    const b = collatePrompts(
      [
        { ids: [1, 2, 3], prompt: 'a', extra: { answer: 1 } },
        { ids: [4], prompt: 'b', extra: { answer: 2 } },
      ],
      { padId: 0 },
    );
    expect([...b.tokens.ids]).toEqual([1, 2, 3, 0, 0, 4]);
    expect([...b.tokens.mask]).toEqual([1, 1, 1, 0, 0, 1]);
    expect(b.extra).toEqual([{ answer: 1 }, { answer: 2 }]);
  });

  it('refuses empty batches and mismatched masks', () => {
    expect(() => collateSft([], { padId: 0 })).toThrow(
      'collateSft: a batch needs at least one item',
    );
    expect(() => collateSft([{ ids: [1, 2], lossMask: new Uint8Array(1) }], { padId: 0 })).toThrow(
      'row 0 has 2 ids but a loss mask of 1',
    );
  });
});

describe('packing', () => {
  it('cuts EOS-joined documents into overlapping blocks of blockSize + 1 (hand example)', () => {
    // Stream: 1 2 3 E 4 5 E 6 E (E = 0). Blocks start every 3 tokens and hold 4.
    const docs = [[1, 2, 3], [4, 5], [6]];
    const dropped = packDocuments(docs, { blockSize: 3, eosId: 0 });
    expect(dropped.map((b) => b.ids)).toEqual([
      [1, 2, 3, 0],
      [0, 4, 5, 0],
    ]);
    expect(dropped.map((b) => [...b.lossMask])).toEqual([
      [0, 1, 1, 1],
      [0, 1, 1, 1],
    ]);
    const padded = packDocuments(docs, { blockSize: 3, eosId: 0, remainder: 'pad', padId: 9 });
    expect(padded[2].ids).toEqual([0, 6, 0, 9]);
    expect([...padded[2].mask]).toEqual([1, 1, 1, 0]);
    expect([...padded[2].lossMask]).toEqual([0, 1, 1, 0]);
    // Every next-token pair of the stream is a target exactly once: 9 tokens, 8 targets.
    const targets = padded.reduce((s, b) => s + b.lossMask.reduce((a, v) => a + v, 0), 0);
    expect(targets).toBe(8);
  });

  it('masks the first token of each document as a target when asked', () => {
    const blocks = packDocuments([[1, 2, 3], [4, 5], [6]], {
      blockSize: 3,
      eosId: 0,
      remainder: 'pad',
      maskBoundaries: true,
    });
    expect(blocks.map((b) => [...b.lossMask])).toEqual([
      [0, 1, 1, 1],
      [0, 0, 1, 1],
      [0, 0, 1, 0],
    ]);
  });

  it('streams: pushing documents one by one gives the same blocks', () => {
    const docs = ['Call me Ishmael.', 'Some years ago.', 'Never mind how long precisely.'].map(
      (t) => tok.encode(t),
    );
    const opts = { blockSize: 4, eosId: EOS, remainder: 'pad' as const };
    const packer = new Packer(opts);
    const streamed = [...docs.flatMap((d) => packer.push(d)), ...packer.finish()];
    const blocks = packDocuments(docs, opts);
    expect(streamed).toEqual(blocks);
    // The blocks, overlap removed, are the documents joined by EOS.
    const text = tok.decode([
      ...blocks[0].ids,
      ...blocks.slice(1).flatMap((b) => b.ids.slice(1).filter((_, t) => b.mask[t + 1])),
    ]);
    expect(text).toBe(
      'Call me Ishmael.<|endoftext|>Some years ago.<|endoftext|>Never mind how long precisely.<|endoftext|>',
    );
    const batch = collateBlocks(blocks);
    expect(batch.tokens.batch).toBe(blocks.length);
    expect(batch.tokens.length).toBe(5);
  });

  it('equals the plain definition on seeded random documents (empty ones, every option)', () => {
    // Reference: the stream is the documents each followed by EOS; block k is
    // stream[k·bs … (k+1)·bs]; target t > 0 counts unless boundaries are masked and it starts a doc.
    let seed = 7;
    const draw = (n: number) => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    for (let trial = 0; trial < 60; trial++) {
      const docs = Array.from({ length: 1 + draw(6) }, () =>
        Array.from({ length: draw(3) === 0 ? 0 : draw(12) }, () => 1 + draw(50)),
      );
      const opts = {
        blockSize: 1 + draw(6),
        eosId: 0,
        remainder: draw(2) ? ('pad' as const) : ('drop' as const),
        padId: 99,
        maskBoundaries: draw(2) === 1,
      };
      const stream = docs.flatMap((d) => [...d, 0]);
      const starts = docs.flatMap((d) => [...d, 0].map((_, i) => (i === 0 ? 1 : 0)));
      const want: { ids: number[]; mask: number[]; lossMask: number[] }[] = [];
      const n = opts.blockSize + 1;
      for (let at = 0; at < stream.length - 1; at += opts.blockSize) {
        const real = Math.min(n, stream.length - at);
        if (real < n && opts.remainder === 'drop') break;
        want.push({
          ids: Array.from({ length: n }, (_, t) => (t < real ? stream[at + t] : 99)),
          mask: Array.from({ length: n }, (_, t) => (t < real ? 1 : 0)),
          lossMask: Array.from({ length: n }, (_, t) =>
            t > 0 && t < real && !(opts.maskBoundaries && starts[at + t]) ? 1 : 0,
          ),
        });
        if (real < n) break;
      }
      const got = packDocuments(docs, opts).map((b) => ({
        ids: b.ids,
        mask: [...b.mask],
        lossMask: [...b.lossMask],
      }));
      expect(got, JSON.stringify({ docs, opts })).toEqual(want);
    }
  });

  it('packs a 200,000-token document into 200,000 blocks (no spread of the blocks: it overflowed the stack)', () => {
    const doc = Array.from({ length: 200_000 }, (_, i) => 1 + (i % 1000));
    const blocks = packDocuments([doc], { blockSize: 1, eosId: 0 });
    expect(blocks).toHaveLength(200_000);
    expect(blocks[199_999].ids).toEqual([1000, 0]);
  });

  it('refuses a bad block size', () => {
    expect(() => new Packer({ blockSize: 0, eosId: 0 })).toThrow(
      'Packer: blockSize must be a positive integer, got 0',
    );
  });
});
