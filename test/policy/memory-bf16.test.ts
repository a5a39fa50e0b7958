import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryProblem, threadPeak } from '../../src/algorithms/memory-check.js';
import { rlActors } from '../../src/algorithms/memory-check-rl.js';
import { frozenModel } from '../../src/algorithms/roles/models.js';
import { formatMemoryReport, memoryReport } from '../../src/cli/doctor-memory.js';
import { wasmTensorBytes } from '../../src/kernels/backends/wasm.js';
import { withPrecision } from '../../src/kernels/precision.js';
import * as tf from '../../src/kernels/tf.js';
import { frozenForPrecision, loadFrozen, modelWeightBytes } from '../../src/policy/bf16.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../../src/policy/config.js';
import { readModelConfig } from '../../src/policy/io.js';
import { bf16Matrices, type MemoryJob, predictMemory } from '../../src/policy/memory.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import type { HeadName } from '../../src/policy/params.js';
import { targetLogProbs } from '../../src/policy/target-logprobs.js';
import {
  memoryRlConfig,
  MEMORY_RL_MODEL as RL_MODEL,
} from '../algorithms/fixtures/memory-rl-config.js';
import { useBackend } from '../helpers/backends.js';
import { nativeSkip } from '../helpers/native.js';
import { rejected } from '../helpers/thrown.js';
import { randomState, TINY } from './fixtures.js';
import { tokenBatch } from './memory-step.js';

/**
 * The predictor's weights for frozen models under precision bf16 (the generator, the reference,
 * a reward model), against what a real one holds: the model built as the roles build it
 * (policy/bf16.ts loadFrozen; frozenForPrecision for a model already in memory), its backend
 * tensors' bytes (tf.memory) and its bf16 panels' bytes (host ArrayBuffers). Both are byte counts
 * of buffers whose sizes follow from the shapes alone, so the prediction must equal them exactly:
 * tolerance 0. On wasm the load is measured too: the heap's peak (each buffer once) while the
 * model is built with its matrices rounded as they are drawn, against the build it replaced (in
 * fp32, then rounded matrix by matrix).
 *
 * Shapes: TINY's families (learned positions, biases, tied and untied heads, q/k norms, sandwich
 * norms, GeGLU), every width under one 32-column panel; and two mid shapes whose widths are not
 * whole panels (kv 12 → 32, intermediate 100 → 128, vocabulary 1000 → 1024), where counting fp32
 * (4 bytes a weight) or unpadded bf16 (2 bytes a weight) would each miss.
 */

const MID_LLAMA = llamaConfig({
  vocabSize: 1000,
  hidden: 48,
  layers: 2,
  heads: 4,
  kvHeads: 1,
  intermediate: 100,
});
const MID_GPT2 = gpt2Config({ vocabSize: 1000, hidden: 48, layers: 2, heads: 4, maxPositions: 40 });

const SHAPES: [string, ModelConfig][] = [
  ...(['gpt2', 'llama', 'qwen2', 'qwen3', 'gemma2'] as const).map((f): [string, ModelConfig] => [
    f,
    TINY[f],
  ]),
  ['mid llama (untied, padded panels)', MID_LLAMA],
  ['mid gpt2 (tied, learned positions, padded panels)', MID_GPT2],
];

const forward = (config: ModelConfig, heads?: HeadName[]): MemoryJob => ({
  config,
  method: 'none',
  batch: 1,
  seq: 1,
  precision: 'bf16',
  ...(heads ? { heads } : {}),
});

/** A frozen model built under precision bf16 and what it holds, measured. */
async function heldBytes(build: () => Promise<CausalLM>) {
  const live = tf.memory().numBytes;
  const heap = tf.getBackend() === 'wasm' ? wasmTensorBytes({ reset: true }) : undefined;
  const model = await withPrecision('bf16', build);
  const loadPeak = heap ? wasmTensorBytes()!.peakBytes - heap.liveBytes : undefined;
  const backend = tf.memory().numBytes - live;
  const bf16 = model.weights16?.bytes ?? 0;
  const matrices = model.weights16?.matrices.size ?? 0;
  const total = modelWeightBytes(model);
  model.dispose();
  return { backend, bf16, total, loadPeak, matrices };
}

describe.skipIf(nativeSkip !== null)(
  `a bf16-held reference's forward, measured${nativeSkip ? ` (${nativeSkip})` : ''}`,
  () => {
    beforeAll(async () => {
      await useBackend('wasm');
    });

    /**
     * A reference's log-probs (targetLogProbs, as roles/reference.ts computes them) on a
     * bf16-held model, its wasm heap peak above what was live (each buffer once) against the
     * predicted activations: 0.9–1.6×, memory.test.ts's tolerance for a step's transients (the
     * prediction adds every term's most). The head goes in chunks of max(32, 2²³/V) rows, each
     * freed before the next: counting the whole [N, V] logits (the fp32 forward's term) would
     * predict 2.5× at 151936 words, and chunks kept to the end (as bf16HeadLogProbs kept them) measured 0.5×.
     */
    it.each([
      [151936, 1, 128],
      [32768, 2, 64],
    ])('vocabulary %i, %i × %i tokens', async (V, B, T) => {
      const c = llamaConfig({
        vocabSize: V,
        hidden: 256,
        layers: 2,
        heads: 4,
        intermediate: 688,
        tieEmbeddings: true,
      });
      const model = await withPrecision('bf16', () => frozenModel({ config: c, seed: 3 }));
      const start = wasmTensorBytes({ reset: true })!.liveBytes;
      await withPrecision('bf16', async () => {
        const lp = tf.tidy(() => targetLogProbs(model, tokenBatch(B, T, V), { start: 1 }).logp);
        await lp.data();
        lp.dispose();
      });
      const measured = wasmTensorBytes()!.peakBytes - start;
      model.dispose();
      const p = predictMemory({ config: c, method: 'none', batch: B, seq: T, precision: 'bf16' });
      const ratio = p.activations / measured;
      const msg = `predicted ${p.activations}, measured ${measured}`;
      expect(ratio, msg).toBeGreaterThan(0.9);
      expect(ratio, msg).toBeLessThan(1.6);
      // the whole logits never exist at once
      expect(measured).toBeLessThan(B * T * V * 4);
    });
  },
);

describe('memory predictor: frozen models under precision bf16', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    describe(backend, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });

      it.each(SHAPES)('%s: the held bytes, measured, are the predicted weights', async (_, c) => {
        const m = await heldBytes(() => loadFrozen({ config: c, seed: 3 }));
        const p = predictMemory(forward(c));
        expect(m.bf16, 'bf16 panels').toBe(p.bf16Weights);
        expect(m.backend, 'fp32 tensors left').toBe(p.weights - p.bf16Weights);
        expect(m.total).toBe(p.weights);
        if (m.loadPeak !== undefined) {
          // wasm: the fp32 build put every weight in fp32 on the heap before rounding them
          const old = await heldBytes(() => frozenForPrecision(CausalLM.init(c, { seed: 3 })));
          expect(old.loadPeak).toBe(4 * p.params);
          // loadFrozen: only the fp32 parameters it keeps ever reach the heap
          expect(m.loadPeak).toBe(p.weights - p.bf16Weights);
          expect(p.backendPeak).toBe(Math.max(m.loadPeak, p.peak - p.bf16Weights));
          expect(p.backendPeak).toBe(p.peak - p.bf16Weights);
        }
      });

      it('a reward model (score head, fp32) loaded as model-source.ts loads it', async () => {
        const c = MID_LLAMA;
        const m = await heldBytes(() =>
          frozenForPrecision(CausalLM.fromState(c, randomState(c, 4, ['score']), ['score'])),
        );
        const p = predictMemory(forward(c, ['score']));
        expect(m.bf16).toBe(p.bf16Weights);
        expect(m.backend).toBe(p.weights - p.bf16Weights);
        // the head's d floats stay fp32 beside the norms
        expect(p.weights - predictMemory(forward(c)).weights).toBe(4 * c.hidden);
      });
    });
  }

  it('the fp32 count and the unpadded bf16 count both miss the measured bytes', async () => {
    await useBackend('wasm');
    const c = MID_LLAMA;
    const m = await heldBytes(() => frozenModel({ config: c, seed: 5 }));
    const fp32 = predictMemory({ ...forward(c), precision: 'fp32' });
    const { params: m16 } = bf16Matrices(c);
    const unpadded = (fp32.params - m16) * 4 + 2 * m16;
    // measured: 309184 bytes for 136560 parameters (fp32: 546240; 2 bytes a matrix weight
    // without the panels' padding: 273600)
    expect(m.total).toBe(309184);
    expect(fp32.weights).toBe(546240);
    expect(fp32.weights / m.total).toBeGreaterThan(1.7);
    // the padding, by hand: per layer q, k, v, o, gate, up pad their 48 input rows by 16, 20, 20,
    // 16, 28, 28 columns and down its 100 rows by 16; Eᵀ and the head [48, 1000] by 24
    const padding = 2 * (48 * (16 + 20 + 20 + 16 + 28 + 28) + 100 * 16) + 2 * 48 * 24;
    expect(m.total - unpadded).toBe(2 * padding);
    // holdBf16 held 7 projections a layer, Eᵀ and the head
    expect(m.matrices).toBe(2 * 7 + 2);
  });

  it('a trained model keeps fp32 masters under bf16; frozen copies beside it hold bf16', () => {
    const c = MID_LLAMA;
    const job: MemoryJob = { config: c, method: 'full', batch: 2, seq: 16 };
    const fp32 = predictMemory(job);
    const bf16 = predictMemory({ ...job, precision: 'bf16' });
    expect(bf16).toEqual({ ...fp32, backendPeak: fp32.peak, bf16Weights: 0 });
    expect(bf16.weights).toBe(4 * bf16.params);
    const frozen = predictMemory({ ...forward(c), precision: 'bf16' }).weights;
    const copy = predictMemory({ ...job, frozenCopies: 1, precision: 'bf16' });
    expect(copy.weights).toBe(fp32.weights + frozen);
    expect(copy.bf16Weights).toBe(bf16Matrices(c).bytes);
    // the copy is built with its matrices in bf16 (loadFrozen): only its fp32 rest is on the backend
    expect(copy.backendPeak).toBe(copy.peak - copy.bf16Weights);
    expect(copy.backendPeak - fp32.peak).toBe(frozen - bf16Matrices(c).bytes);
  });

  it('refuses a precision it does not know, naming the field', () => {
    expect(() =>
      predictMemory({ ...forward(MID_LLAMA), precision: 'fp16' as unknown as 'bf16' }),
    ).toThrow(/memory: precision must be 'fp32' or 'bf16', got 'fp16'/);
  });
});

const rlConfig = (extra: Record<string, unknown>) =>
  memoryRlConfig('grpo', { rl: { kl: { mode: 'loss', coef: 0.01 } }, ...extra });

describe('the RL memory check and doctor under precision bf16', () => {
  it('the generator, the reference and a reward model hold bf16; the policy fp32 masters', async () => {
    const c = await rlConfig({ runtime: { backend: 'cpu', precision: 'bf16' } });
    const actors = rlActors(c, RL_MODEL, RL_MODEL, [{ name: 'rm', config: RL_MODEL }]);
    expect(actors.map((a) => a.actor)).toEqual(['policy', 'generator', 'reference', 'reward']);
    const [policy, generator, reference, reward] = actors;
    expect(policy.job.precision).toBeUndefined();
    for (const a of [generator, reference, reward]) expect(a.job.precision).toBe('bf16');
    const ref = predictMemory(reference.job);
    const m16 = bf16Matrices(RL_MODEL);
    expect(ref.weights).toBe((ref.params - m16.params) * 4 + m16.bytes);
    // on cpu the thread holds the bf16 weights; on wasm its heap's high-water mark beside them
    expect(threadPeak(reference).host).toBe(ref.peak);
    expect(threadPeak({ ...reference, backend: 'wasm' }).host).toBe(
      Math.max(ref.peak, ref.backendPeak + ref.bf16Weights),
    );
    // the rollout's forward needs more of the backend than an fp32 load would (4 · params)
    expect(ref.backendPeak).toBe(ref.peak - ref.bf16Weights);
    expect(ref.backendPeak).toBeGreaterThan(4 * ref.params);
    // a run that fits the host only with the frozen models in bf16
    const fp32 = rlActors(await rlConfig({ runtime: { backend: 'cpu' } }), RL_MODEL);
    const need = (as: typeof actors) => as.reduce((s, a) => s + threadPeak(a).host, 0);
    const bf16Run = actors.slice(0, 3);
    const host = (need(bf16Run) + need(fp32)) / 2;
    expect(memoryProblem(bf16Run, { wasmHeap: 2 ** 32, host })).toBeUndefined();
    const e = memoryProblem(fp32, { wasmHeap: 2 ** 32, host })!;
    expect(e.message).toMatch(/will not fit in host memory/);
  });

  it('a colocated reference takes its host thread precision', async () => {
    const c = await rlConfig({
      runtime: { backend: 'cpu' },
      actors: { policy: { precision: 'bf16' }, reference: { colocateWith: 'policy' } },
    });
    const [policy] = rlActors(c, RL_MODEL);
    expect(policy.colocated?.map((g) => [g.actor, g.job.precision])).toEqual([
      ['reference', 'bf16'],
    ]);
  });

  it('a wasm reference whose fp32 load would pass the heap fits in bf16 (it loads as bf16)', async () => {
    // one prompt's 4 samples of 32 tokens beside a 32768-word vocabulary: the weights dominate
    const big = llamaConfig({ ...RL_MODEL, vocabSize: 32768, hidden: 512, heads: 8, layers: 2 });
    const train = { steps: 1, batchSize: 1, evalEvery: 0, evalBatches: 1, saveEvery: 0 };
    const c = await rlConfig({ runtime: { backend: 'wasm', precision: 'bf16' }, train });
    const reference = rlActors(c, big).find((a) => a.actor === 'reference')!;
    const p = predictMemory(reference.job);
    expect(p.backendPeak).toBe(p.peak - p.bf16Weights);
    // the fp32 load the build replaced would have needed every weight in fp32 at once
    expect(p.backendPeak).toBeLessThan(4 * p.params);
    const heap = (p.backendPeak + 4 * p.params) / 2;
    expect(memoryProblem([reference], { wasmHeap: heap, host: 2 ** 40 })).toBeUndefined();
    // the same reference in fp32 does not fit that heap
    const fp32 = rlActors(await rlConfig({ runtime: { backend: 'wasm' }, train }), big).find(
      (a) => a.actor === 'reference',
    )!;
    const e = memoryProblem([fp32], { wasmHeap: heap, host: 2 ** 40 })!;
    expect(e.message).toMatch(/^Actor 'reference' will not fit: a forward of /);
    expect(e.message).not.toMatch(/loads in fp32 first/);
  });

  it('an fp32 reference past the heap is offered bf16 weights, with their peak', async () => {
    const c = await rlConfig({ runtime: { backend: 'cpu' } });
    const reference = rlActors(c, RL_MODEL).find((a) => a.actor === 'reference')!;
    const p = predictMemory(reference.job);
    const bf16 = threadPeak({ ...reference, job: { ...reference.job, precision: 'bf16' } }).host;
    const e = memoryProblem([reference], { wasmHeap: 2 ** 40, host: (p.peak + bf16) / 2 })!;
    expect(e.message).toMatch(
      /bf16 weights \(precision: bf16 for this actor\): peak [\d.]+ GiB \(fits\)/,
    );
  });

  it('troupe doctor --model with --precision bf16: the frozen rows hold bf16', async () => {
    const dir = resolve('test/fixtures/models/qwen2');
    const config = await readModelConfig(dir);
    const limits = { wasmHeap: 2e5, host: 1e6 };
    const fp32 = await memoryReport(dir, { batch: 2, seq: 16, limits });
    const r = await memoryReport(dir, { batch: 2, seq: 16, limits, precision: 'bf16' });
    const m16 = bf16Matrices(config);
    const row = (x: typeof r, job: RegExp) => x.rows.find((y) => job.test(y.job))!.prediction;
    expect(row(r, /^forward/).weights).toBe((r.params - m16.params) * 4 + m16.bytes);
    expect(row(fp32, /^forward/).weights).toBe(4 * r.params);
    expect(row(r, /^generation/).bf16Weights).toBe(m16.bytes);
    expect(row(r, /^full fine-tune/)).toEqual(row(fp32, /^full fine-tune/));
    for (const x of r.rows) expect(x.fitsWasm).toBe(x.prediction.backendPeak <= limits.wasmHeap);
    expect(r.rl.find((x) => x.job.startsWith('reference'))!.prediction.bf16Weights).toBe(m16.bytes);
    expect(formatMemoryReport(r)).toMatch(/at 2 × 16 tokens, precision bf16 \(frozen models/);
    expect(formatMemoryReport(r)).toMatch(/forward .* \(weights [\d.]+ GiB \([\d.]+ GiB bf16\)/);
    const e = await rejected(memoryReport(dir, { precision: 'fp16' }));
    expect(e.message).toMatch(/doctor --precision: 'fp32' or 'bf16', got 'fp16'/);
  });
});
