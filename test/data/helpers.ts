import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, encode } from 'gpt-tokenizer/encoding/r50k_base';
import type { TokenizerLike } from '../../src/data/tokenizer/types.js';

/**
 * A real tokenizer for the data tests: GPT-2's byte-level BPE (r50k_base, from `gpt-tokenizer`)
 * behind `TokenizerLike`, with ChatML's markers added after the vocabulary. Special tokens are
 * split out of the text first, as Hugging Face tokenizers do with added tokens.
 *
 *   <|endoftext|> 50256 (BOS = EOS = PAD, as in GPT-2)   <|im_start|> 50257   <|im_end|> 50258
 */
export const SPECIALS: Readonly<Record<string, number>> = {
  '<|endoftext|>': 50256,
  '<|im_start|>': 50257,
  '<|im_end|>': 50258,
};
const BY_ID = new Map(Object.entries(SPECIALS).map(([t, id]) => [id, t]));
const SPLIT = /(<\|endoftext\|>|<\|im_start\|>|<\|im_end\|>)/;

export function gpt2Tokenizer(
  opts: { chatTemplate?: string; addBos?: boolean } = {},
): TokenizerLike {
  const eos = SPECIALS['<|endoftext|>'];
  return {
    vocabSize: 50259,
    bosTokenId: eos,
    eosTokenId: eos,
    padTokenId: eos,
    chatTemplate: opts.chatTemplate,
    encode(text, o) {
      const ids: number[] = opts.addBos && o?.addSpecialTokens !== false ? [eos] : [];
      for (const part of text.split(SPLIT)) {
        if (part === '') continue;
        const special = SPECIALS[part];
        if (special !== undefined) ids.push(special);
        else for (const id of encode(part)) ids.push(id);
      }
      return ids;
    },
    decode(ids, o) {
      let out = '';
      let run: number[] = [];
      const flush = () => {
        if (run.length > 0) out += decode(run);
        run = [];
      };
      for (const id of ids) {
        const special = BY_ID.get(id);
        if (special === undefined) {
          run.push(id);
          continue;
        }
        flush();
        if (!o?.skipSpecialTokens) out += special;
      }
      flush();
      return out;
    },
    tokenToId(token) {
      const special = SPECIALS[token];
      if (special !== undefined) return special;
      const ids = encode(token);
      return ids.length === 1 ? ids[0] : undefined;
    },
    idToToken(id) {
      return BY_ID.get(id) ?? (id >= 0 && id < 50256 ? decode([id]) : undefined);
    },
  };
}

/** A temporary directory for one test file; `cleanup()` removes it. */
export function tempDir(prefix: string): {
  dir: string;
  file: (name: string, text: string) => string;
  cleanup: () => void;
} {
  const dir = mkdtempSync(join(tmpdir(), `troupe-${prefix}-`));
  return {
    dir,
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The text of the tokens where `mask` is 1, one string per contiguous run. */
export function maskedRuns(
  tok: TokenizerLike,
  ids: readonly number[],
  mask: ArrayLike<number>,
): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  for (let i = 0; i <= ids.length; i++) {
    if (i < ids.length && mask[i]) run.push(ids[i]);
    else if (run.length > 0) {
      runs.push(tok.decode(run));
      run = [];
    }
  }
  return runs;
}
