import { describe, expect, it } from 'vitest';
import { planThreads } from '../../src/actors/topology.js';
import { describePlacement } from '../../src/algorithms/launch.js';
import { placementOf } from '../../src/algorithms/topologies.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, LmConfig, RlConfig } from '../../src/config/schema.js';

/** `runtime.precision` and `actors.<name>.precision`: config → placement → each thread's runtime. */
const base = {
  output: '/tmp/x',
  model: { path: 'some/model' },
  data: { train: 'train.jsonl' },
  train: { steps: 10, batchSize: 8 },
};
const rl = (algorithm: string, extra: Record<string, unknown> = {}) =>
  loadConfig<RlConfig>(algorithm, {
    object: { ...base, reward: { sources: [{ type: 'sentiment' }] }, ...extra },
  });

describe('precision in config and placement', () => {
  it('runtime.precision bf16 reaches every actor thread of a GRPO run (frozen ones too)', async () => {
    const c = await rl('grpo', { runtime: { backend: 'wasm', precision: 'bf16' } });
    expect(c.runtime.precision).toBe('bf16');
    const p = placementOf(c);
    expect(p.actors.map((a) => [a.name, a.precision])).toEqual([
      ['policy', 'bf16'],
      ['generator', 'bf16'],
      ['reward', 'bf16'],
      ['reference', 'bf16'],
    ]);
    expect(planThreads(p.topology).map((t) => [t.thread, t.runtime.precision])).toEqual([
      ['policy', 'bf16'],
      ['generator', 'bf16'],
      ['reward', 'bf16'],
      ['reference', 'bf16'],
    ]);
    expect(describePlacement(p)[0]).toMatch(/^policy: backend wasm, .*, precision bf16$/);
  });

  it('fp32 is the default, and an actor can differ (a bf16 reference for an fp32 policy)', async () => {
    const c = await rl('grpo', { actors: { reference: { precision: 'bf16' } } });
    expect(c.runtime.precision).toBe('fp32');
    const p = placementOf(c);
    const by = Object.fromEntries(p.actors.map((a) => [a.name, a.precision]));
    expect(by).toEqual({
      policy: undefined,
      generator: undefined,
      reward: undefined,
      reference: 'bf16',
    });
    const threads = planThreads(p.topology);
    expect(threads.find((t) => t.thread === 'reference')?.runtime.precision).toBe('bf16');
    expect(threads.find((t) => t.thread === 'policy')?.runtime.precision).toBeUndefined();
  });

  it('a colocated actor shares its host thread’s precision: a different one is refused', async () => {
    const c = await rl('grpo', {
      runtime: { backend: 'wasm' },
      actors: { reference: { colocateWith: 'policy', precision: 'bf16' } },
    });
    expect(() => placementOf(c)).toThrow(
      "actors.reference.precision: a colocated actor shares 'policy''s thread and its precision (fp32); remove 'precision' here",
    );
  });

  it('every trainer takes it: pretrain, sft, rm, dpo, ppo, rloo, reinforce', async () => {
    for (const algorithm of ['pretrain', 'sft', 'rm']) {
      const c = await loadConfig<LmConfig>(algorithm, {
        object: { ...base, runtime: { precision: 'bf16' } },
      });
      expect(placementOf(c).actors.every((a) => a.precision === 'bf16')).toBe(true);
    }
    const d = await loadConfig<DpoConfig>('dpo', {
      object: { ...base, runtime: { precision: 'bf16' } },
    });
    expect(placementOf(d).actors.map((a) => a.precision)).toEqual(['bf16', 'bf16']);
    for (const algorithm of ['ppo', 'rloo', 'reinforce']) {
      const c = await rl(algorithm, { runtime: { precision: 'bf16' } });
      expect(placementOf(c).actors.every((a) => a.precision === 'bf16')).toBe(true);
    }
  });

  it('fp16 is refused by name on every backend, saying why; another precision names the choices', async () => {
    for (const backend of ['wasm', 'cpu', 'webgpu', 'tensorflow', 'tensorflow-gpu', 'auto']) {
      await expect(rl('grpo', { runtime: { backend, precision: 'fp16' } })).rejects.toThrow(
        /runtime\.precision: fp16 is not offered: no backend here computes float16 .*webgpu and tensorflow-gpu run tfjs' float32 kernels.*use bf16 on wasm or cpu, or fp32/,
      );
    }
    await expect(rl('grpo', { actors: { reference: { precision: 'fp16' } } })).rejects.toThrow(
      /actors\.reference\.precision: fp16 is not offered/,
    );
    await expect(rl('grpo', { runtime: { precision: 'int8' } })).rejects.toThrow(
      /runtime\.precision.*fp32.*bf16/s,
    );
    await expect(rl('grpo', { actors: { policy: { precision: 'int8' } } })).rejects.toThrow(
      /actors\.policy\.precision/,
    );
  });
});
