import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatMemoryReport, memoryReport } from '../../src/cli/doctor-memory.js';
import { readModelConfig } from '../../src/policy/io.js';
import { parameterCount, predictMemory } from '../../src/policy/memory.js';
import { cliArgs } from '../helpers/cli.js';

const QWEN2 = resolve('test/fixtures/models/qwen2');

describe('troupe doctor --model', () => {
  it('predicts each way of running a checkpoint against the wasm heap and the host, from config.json', async () => {
    const config = await readModelConfig(QWEN2);
    const limits = { wasmHeap: 2e5, host: 1e6 };
    const r = await memoryReport(QWEN2, { batch: 2, seq: 16, limits });
    expect(r.params).toBe(parameterCount(config));
    const full = r.rows.find((x) => x.job === 'full fine-tune, AdamW')!;
    expect(full.prediction).toEqual(predictMemory({ config, method: 'full', batch: 2, seq: 16 }));
    expect(full.prediction.optimizer).toBe(8 * r.params);
    for (const x of r.rows) {
      expect(x.fitsWasm).toBe(x.prediction.peak <= limits.wasmHeap);
      expect(x.fitsHost).toBe(x.peakBytes <= limits.host);
    }
    const text = formatMemoryReport(r);
    expect(text).toMatch(/at 2 × 16 tokens/);
    expect(text).toMatch(/full fine-tune, AdamW +peak [\d.]+ GiB \(weights/);
  });

  it("prints the RL rows: each actor's thread and each run's threads together", async () => {
    const config = await readModelConfig(QWEN2);
    const limits = { wasmHeap: 2e5, host: 1e6 };
    const r = await memoryReport(QWEN2, { batch: 4, seq: 16, limits });
    expect(r.rl.map((x) => x.job)).toEqual([
      'policy, full AdamW',
      'policy, LoRA r8 q/v',
      'generator (KV cache of 4×16, prompts of 8)',
      'reference (KL), forward',
      'critic (PPO), full AdamW + value head',
    ]);
    const [full, , generator, reference, critic] = r.rl;
    const step = predictMemory({ config, method: 'full', batch: 4, seq: 16 });
    const scoring = predictMemory({ config, method: 'none', batch: 4, seq: 16 });
    expect(full.peakBytes).toBe(
      Math.max(step.peak, step.weights + step.optimizer + scoring.activations),
    );
    expect(generator.prediction.kvCache).toBe(
      2 * config.layers * 4 * config.kvHeads * config.headDim * 16 * 4,
    );
    expect(reference.peakBytes).toBe(scoring.peak);
    expect(critic.prediction.params).toBe(parameterCount(config, ['value_head']));
    const ppo = r.rlRuns.find((x) => x.run.startsWith('PPO'))!;
    expect(ppo.bytes).toBe(
      full.peakBytes + generator.peakBytes + reference.peakBytes + critic.peakBytes,
    );
    for (const x of r.rl) expect(x.fitsHost).toBe(x.peakBytes <= limits.host);
    const text = formatMemoryReport(r);
    expect(text).toMatch(/Online RL, a rollout of 4 rows × 16 tokens/);
    expect(text).toMatch(/policy, full AdamW +thread peak [\d.]+ GiB; peak [\d.]+ GiB \(weights/);
    expect(text).toMatch(
      /PPO, full \(policy, generator, reference, critic\): [\d.]+ GiB of host memory/,
    );
  });

  it('the CLI prints it (no weight is read, no backend started)', () => {
    const out = execFileSync(
      process.execPath,
      [...cliArgs(), 'doctor', '--model', QWEN2, '--seq', '32', '--json'],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out);
    expect(r.seq).toBe(32);
    expect(r.rows.map((x: { job: string }) => x.job)).toContain('QLoRA (nf4) r8 q/v');
  });
});
