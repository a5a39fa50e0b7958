import { RandomStream } from '../../src/kernels/random.js';
import {
  gpt2Config,
  llamaConfig,
  type ModelConfig,
  validateConfig,
} from '../../src/policy/config.js';
import type { Tensor32 } from '../../src/policy/model/causal-lm.js';
import { type HeadName, headSpecs, paramSpecs } from '../../src/policy/params.js';

const llamaTiny = (o: Partial<ModelConfig> = {}) =>
  llamaConfig({
    vocabSize: 29,
    hidden: 16,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 24,
    ropeTheta: 100,
    ...o,
  });

/**
 * Tiny configs of each family, small enough for float64 plain-loop references: one per model
 * type (the key is its transformers `model_type`), plus the llama family with each RoPE scaling.
 * Windows, lengths and RoPE ranges are tiny so that the rows the tests use (≤ 7 tokens) cross them.
 */
export const TINY = {
  gpt2: gpt2Config({ vocabSize: 23, hidden: 16, layers: 2, heads: 4, maxPositions: 32 }),
  llama: llamaTiny(),
  qwen2: llamaConfig({
    vocabSize: 19,
    hidden: 16,
    layers: 2,
    heads: 4,
    kvHeads: 1,
    intermediate: 20,
    qkvBias: true,
    tieEmbeddings: true,
    ropeTheta: 1000,
  }),
  qwen3: llamaTiny({ headDim: 6, qkNorm: true, tieEmbeddings: true, ropeTheta: 1e4 }),
  mistral: llamaTiny({ slidingWindow: 3 }),
  gemma2: validateConfig({
    ...llamaTiny({ headDim: 6 }),
    mlp: 'geglu',
    normUnitOffset: true,
    sandwichNorms: true,
    embedScale: Math.fround(4),
    queryScale: 5 ** -0.5,
    attnSoftcap: 1.5,
    finalSoftcap: 2.5,
    slidingWindow: 3,
    layerTypes: ['sliding', 'full'],
    tieEmbeddings: true,
  }),
  gemma3_text: validateConfig({
    ...llamaTiny({ headDim: 6, layers: 3, kvHeads: 1 }),
    mlp: 'geglu',
    normUnitOffset: true,
    sandwichNorms: true,
    qkNorm: true,
    embedScale: Math.fround(4),
    queryScale: 5 ** -0.5,
    slidingWindow: 2,
    layerTypes: ['sliding', 'sliding', 'full'],
    ropeTheta: 1e4,
    ropeLocalTheta: 10,
    ropeScaling: { type: 'linear', factor: 3 },
    tieEmbeddings: true,
  }),
  phi3: validateConfig({
    ...llamaTiny({ headDim: 8, hidden: 32, intermediate: 40 }),
    family: 'phi3',
    partialRotary: 0.75,
    slidingWindow: 4,
  }),
  llama3rope: llamaTiny({
    headDim: 8,
    hidden: 32,
    ropeTheta: 5e5,
    tieEmbeddings: true,
    ropeScaling: {
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 8,
    },
  }),
  yarn: llamaTiny({
    headDim: 8,
    hidden: 32,
    ropeTheta: 1e4,
    maxPositions: 32,
    ropeScaling: { type: 'yarn', factor: 4, originalMaxPositions: 8 },
  }),
  dynamic: llamaTiny({ maxPositions: 6, ropeScaling: { type: 'dynamic', factor: 4 } }),
} satisfies Record<string, ModelConfig>;

/**
 * Every parameter random and non-trivial (norm gains near 1, biases non-zero), so a test
 * notices a dropped bias or gain. Deterministic in `seed`.
 */
export function randomState(
  c: ModelConfig,
  seed: number,
  heads: HeadName[] = [],
): Map<string, Tensor32> {
  const state = new Map<string, Tensor32>();
  for (const s of [...paramSpecs(c), ...heads.flatMap((h) => headSpecs(c, h))]) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const r = RandomStream.of({ seed, step: 0, actor: 'fixture', purpose: s.name });
    const isGain = s.kind === 'norm' && s.name.endsWith('.weight');
    const data = r.normal(
      n,
      isGain ? 1 : 0,
      s.kind === 'matrix' || s.kind === 'embedding' ? 0.3 : 0.1,
    );
    state.set(s.name, { shape: [...s.shape], data });
  }
  return state;
}

/** Rows of different lengths with seeded ids. */
export function randomRows(c: ModelConfig, lengths: number[], seed: number): number[][] {
  const r = RandomStream.of({ seed, step: 1, actor: 'fixture', purpose: 'rows' });
  return lengths.map((n) => Array.from({ length: n }, () => r.nextInt(c.vocabSize)));
}
