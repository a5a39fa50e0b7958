import { RandomStream } from '../../src/kernels/random.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../../src/policy/config.js';
import type { Tensor32 } from '../../src/policy/model/causal-lm.js';
import { type HeadName, headSpecs, paramSpecs } from '../../src/policy/params.js';

/** Tiny configs of each family, small enough for float64 plain-loop references. */
export const TINY: Record<'gpt2' | 'llama' | 'qwen2', ModelConfig> = {
  gpt2: gpt2Config({ vocabSize: 23, hidden: 16, layers: 2, heads: 4, maxPositions: 32 }),
  llama: llamaConfig({
    vocabSize: 29,
    hidden: 16,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 24,
    ropeTheta: 100,
  }),
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
};

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
