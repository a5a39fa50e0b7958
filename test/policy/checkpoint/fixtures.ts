import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { RandomStream } from '../../../src/kernels/random.js';
import type { Tensor32 } from '../../../src/policy/checkpoint/index.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../../../src/policy/config.js';
import { type HeadName, headSpecs, paramSpecs } from '../../../src/policy/params.js';

/** Tiny models: GPT-2 (d 8, 2 heads), Llama with GQA (4 heads, 2 kv heads), Qwen2 (q/k/v bias). */
export const GPT2 = gpt2Config({
  vocabSize: 11,
  hidden: 8,
  layers: 2,
  heads: 2,
  maxPositions: 16,
  bosTokenId: 10,
  eosTokenId: 10,
});
export const LLAMA = llamaConfig({
  vocabSize: 13,
  hidden: 16,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 24,
  maxPositions: 64,
  ropeTheta: 500000,
  eosTokenId: 2,
});
export const QWEN2 = llamaConfig({
  vocabSize: 13,
  hidden: 16,
  layers: 1,
  heads: 4,
  kvHeads: 2,
  intermediate: 24,
  qkvBias: true,
  tieEmbeddings: true,
});

/** Every parameter (plus `heads`) filled with distinct seeded normals, in paramSpecs order. */
export function seededState(
  c: ModelConfig,
  heads: HeadName[] = [],
  seed = 7,
): Map<string, Tensor32> {
  const stream = RandomStream.of({ seed, step: 0, actor: 'test' });
  const out = new Map<string, Tensor32>();
  for (const s of [...paramSpecs(c), ...heads.flatMap((h) => headSpecs(c, h))]) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    out.set(s.name, { shape: [...s.shape], data: stream.normal(n) });
  }
  return out;
}

export const bitsOf = (a: Float32Array) =>
  Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** Same names, shapes and bits. */
export function expectSameState(got: Map<string, Tensor32>, want: Map<string, Tensor32>): void {
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, t] of want) {
    expect(got.get(name)!.shape, name).toEqual(t.shape);
    expect(bitsOf(got.get(name)!.data), name).toEqual(bitsOf(t.data));
  }
}

export const tmpDir = () => mkdtempSync(join(tmpdir(), 'troupe-ckpt-'));
