import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/actors/protocol.js';
import { trainRl } from '../../src/algorithms/rl.js';
import { loadConfig } from '../../src/config/load.js';
import type { RlConfig } from '../../src/config/schema.js';
import { STUCK_REWARD } from './fixtures/stuck-reward.js';

describe('a reward stuck in code that never yields', () => {
  it('stops the run with ACTOR_TIMEOUT naming the reward actor and its sources, and says the run stops', async () => {
    const output = join(mkdtempSync(join(tmpdir(), 'troupe-stuck-')), 'run');
    const config = await loadConfig<RlConfig>('grpo', {
      object: {
        output,
        model: {
          init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 64 },
          tokenizer: { train: { vocabSize: 300 } },
        },
        data: { train: 'data/sentiment/prompts.jsonl', evalFraction: 0.02, maxLength: 24 },
        train: { steps: 2, batchSize: 2, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
        rollout: { maxNewTokens: 4 },
        reward: { sources: [{ type: 'sentiment' }, { type: 'length', target: 4 }], timeoutMs: 300 },
        runtime: { backend: 'wasm' },
      },
    });
    const logs: LogRecord[] = [];
    const t0 = Date.now();
    const e = (await trainRl(config, {
      rewardRole: STUCK_REWARD,
      events: { onLog: (r) => logs.push(r) },
    }).catch((x: unknown) => x)) as Error & { code?: string; details?: Record<string, unknown> };
    // 300 ms + as long again of grace; nowhere near the minute the source spins for.
    expect(Date.now() - t0).toBeLessThan(45_000);
    expect(e.code).toBe('ACTOR_TIMEOUT');
    expect(e.message).toBe(
      "reward: the reward actor did not answer within reward.timeoutMs 300 ms + 300 ms, so a source ('sentiment', 'length') is stuck in code that never yields; the run stops here (its checkpoints are kept) and the reward thread is replaced",
    );
    expect(e.details).toMatchObject({ actor: 'reward', sources: ['sentiment', 'length'] });
    const log = readFileSync(join(output, 'log.txt'), 'utf8');
    expect(log).toContain(
      'run failed in the eval before training (step 0): [ACTOR_TIMEOUT] reward:',
    );
    // The supervisor's own words under it: the call failed, the thread is replaced.
    expect(log).toContain(
      "caused by: [ACTOR_TIMEOUT] Call reward.score() did not answer within 600 ms: this call fails, and thread 'reward' is replaced for the calls after it",
    );
    // The replacement is a restart, shown as a warning (the terminal prints warnings).
    expect(logs.some((r) => r.level === 'warn' && /actor 'reward' restarted/.test(r.message))).toBe(
      true,
    );
  }, 120_000);
});
