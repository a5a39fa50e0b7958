import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatMemoryReport, memoryReport } from '../../src/cli/doctor-memory.js';
import { readModelConfig } from '../../src/policy/io.js';
import { parameterCount, predictMemory } from '../../src/policy/memory.js';

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

  it('the CLI prints it (no weight is read, no backend started)', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join('src', 'cli', 'main.ts'),
        'doctor',
        '--model',
        QWEN2,
        '--seq',
        '32',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out);
    expect(r.seq).toBe(32);
    expect(r.rows.map((x: { job: string }) => x.job)).toContain('QLoRA (nf4) r8 q/v');
  });
});
