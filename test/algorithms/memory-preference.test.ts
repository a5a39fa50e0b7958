import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryProblem, preferenceActors } from '../../src/algorithms/memory-check.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, RmConfig } from '../../src/config/schema.js';
import * as tf from '../../src/kernels/tf.js';
import { llamaConfig } from '../../src/policy/index.js';
import { parameterCount, predictMemory } from '../../src/policy/memory.js';
import { useBackend } from '../helpers/backends.js';
import { rejected } from '../helpers/thrown.js';

const MODEL = llamaConfig({
  vocabSize: 4096,
  hidden: 256,
  layers: 4,
  heads: 4,
  intermediate: 688,
  tieEmbeddings: true,
});

function pairsFile(dir: string): string {
  const train = join(dir, 'pairs.jsonl');
  writeFileSync(
    train,
    Array.from({ length: 8 }, (_, i) =>
      JSON.stringify({ prompt: `q${i}`, chosen: ` yes${i}`, rejected: ` no${i}` }),
    ).join('\n'),
  );
  return train;
}

async function preferenceConfig<C>(
  algorithm: 'dpo' | 'rm',
  extra: Record<string, unknown> = {},
): Promise<C> {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-memory-pref-'));
  return loadConfig<C>(algorithm, {
    object: {
      output: join(dir, 'run'),
      model: {
        init: { family: 'llama', hidden: 64, layers: 2, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 280 } },
      },
      data: { train: pairsFile(dir), maxLength: 32, evalFraction: 0 },
      train: { steps: 1, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
      runtime: { backend: 'wasm' },
      ...extra,
    },
  });
}

describe('memory check of preference runs', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('frozenCopies adds 4 bytes a parameter to the weights and the peak', () => {
    const job = { config: MODEL, method: 'full' as const, batch: 1, seq: 16 };
    const one = predictMemory(job);
    const two = predictMemory({ ...job, frozenCopies: 1 });
    expect(two.weights - one.weights).toBe(4 * parameterCount(MODEL));
    expect(two.peak - one.peak).toBe(4 * parameterCount(MODEL));
    expect(() => predictMemory({ ...job, frozenCopies: -1 })).toThrow(/frozenCopies/);
  });

  it('DPO: a learner of two rows a pair and a reference forward; colocated, one job', async () => {
    const c = await preferenceConfig<DpoConfig>('dpo');
    const actors = preferenceActors(c, MODEL);
    expect(actors.map((a) => a.actor)).toEqual(['dpo', 'reference']);
    expect(actors[0].job).toMatchObject({ method: 'full', batch: 8, seq: 32 });
    expect(actors[1].job).toMatchObject({ method: 'none', batch: 8, seq: 32 });
    const colocated = await preferenceConfig<DpoConfig>('dpo', {
      actors: { reference: { colocateWith: 'dpo' } },
    });
    const one = preferenceActors(colocated, MODEL);
    expect(one).toHaveLength(1);
    expect(one[0].job.frozenCopies).toBe(1);
  });

  it('RM: the learner with its score head', async () => {
    const c = await preferenceConfig<RmConfig>('rm', {
      model: {
        init: { family: 'llama', hidden: 64, layers: 2, heads: 2, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 280 } },
        lora: { rank: 4, targetModules: ['q', 'v'] },
      },
    });
    const [rm] = preferenceActors(c, MODEL);
    expect(rm.job).toMatchObject({ method: 'lora', heads: ['score'], batch: 8 });
    expect(predictMemory(rm.job).params).toBe(parameterCount(MODEL, ['score']));
    const e = memoryProblem([rm], { wasmHeap: 1e6, host: 64 * 2 ** 30 })!;
    expect(e.code).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/Actor 'rm' will not fit: LoRA rank 4/);
  });

  it('troupe dpo refuses a model too big for the wasm heap before any actor starts', async () => {
    const c = await preferenceConfig<DpoConfig>('dpo', {
      // 32 layers of d 2048: ~1.6 B parameters, a full AdamW fine-tune needs ~26 GiB
      model: {
        init: { family: 'llama', hidden: 2048, layers: 32, heads: 16, maxPositions: 64 },
        tokenizer: { train: { vocabSize: 280 } },
      },
    });
    const before = tf.memory().numBytes;
    const e = await rejected(trainPreference(c));
    expect(e?.code, e?.message).toBe('OUT_OF_MEMORY');
    expect(e.message).toMatch(/Actor 'dpo' will not fit: a full fine-tune/);
    expect(tf.memory().numBytes).toBe(before);
    expect(readFileSync(join(c.output, 'log.txt'), 'utf8')).not.toMatch(/ready/);
  });
});
