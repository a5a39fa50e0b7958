import { TroupeError } from '../../errors.js';
import type { AddedToken } from './added-tokens.js';
import { bpeOptions } from './models/bpe.js';
import { byteLevelJson } from './spec.js';
import { Tokenizer } from './tokenizer.js';

const END_OF_TEXT = '<|endoftext|>';

/**
 * GPT-2 from OpenAI's original files: `encoder.json` (token → id; its text or the parsed object)
 * and `vocab.bpe` (a `#version` line, then one "a b" merge per line). `<|endoftext|>` becomes a
 * special added token and BOS/EOS/PAD, as in HF's gpt2 tokenizer.json.
 */
export function fromGpt2Files(
  encoderJson: string | Readonly<Record<string, number>>,
  vocabBpe: string,
): Tokenizer {
  const encoder = typeof encoderJson === 'string' ? JSON.parse(encoderJson) : encoderJson;
  const vocab = new Map<string, number>(Object.entries(encoder));
  const merges: [string, string][] = [];
  vocabBpe.split('\n').forEach((line, i) => {
    if (line.startsWith('#version') || line.trim() === '') return;
    const parts = line.split(' ');
    if (parts.length !== 2) {
      throw new TroupeError(
        'BAD_CHECKPOINT',
        `vocab.bpe line ${i + 1}: expected two tokens separated by one space, got ${JSON.stringify(line)}`,
      );
    }
    merges.push([parts[0], parts[1].replace(/\r$/, '')]);
  });
  const eot = vocab.get(END_OF_TEXT);
  const addedTokens: AddedToken[] =
    eot === undefined
      ? []
      : [
          {
            id: eot,
            content: END_OF_TEXT,
            special: true,
            singleWord: false,
            lstrip: false,
            rstrip: false,
            normalized: true,
          },
        ];
  const named = eot === undefined ? undefined : END_OF_TEXT;
  return new Tokenizer({
    model: { type: 'BPE', vocab, merges, mergesForm: 'string', options: bpeOptions() },
    addedTokens,
    ...byteLevelJson(undefined),
    special: {
      bosToken: named,
      eosToken: named,
      padToken: undefined,
      addBosToken: false,
      addEosToken: false,
    },
    extra: {},
    config: {},
  });
}
