import type { Actor } from '../../actors/supervisor.js';
import type { RlConfig } from '../../config/schema.js';
import { hasCode, TroupeError } from '../../errors.js';
import type { DetailedReward, RewardBatch } from '../../reward/types.js';
import { ConstantRewardWatch, constantRewardHint } from '../../reward/watch.js';
import type { RunDir } from '../../train/run-dir.js';
import { openModelSource } from '../common.js';
import type { TrainEvents } from '../lm.js';
import type { RewardRole } from '../roles/reward.js';

/*
 * An RL run's side of the reward actor: `model` sources resolved before it starts, a limit on
 * each call past which the actor counts as stuck, and a watch for a source that scores every
 * training completion alike.
 */

/**
 * The reward sources with each `model` source's path resolved here (a run directory to its
 * checkpoint, said in the log), so that the reward actor loads the checkpoint named in the log.
 */
export async function modelRewardSources(
  c: RlConfig,
  run: RunDir,
  onLog: TrainEvents['onLog'],
): Promise<RlConfig['reward']['sources']> {
  return Promise.all(
    c.reward.sources.map(async (s, i) => {
      if (s.type !== 'model' || typeof s['path'] !== 'string') return s;
      const field = `reward.sources[${i}].path`;
      const source = await openModelSource(run, s['path'], field, { onLog });
      return { ...s, path: source.dir };
    }),
  );
}

/**
 * Extra time the reward actor gets past `reward.timeoutMs` before it counts as stuck: as long
 * again, at most 30 s.
 */
const rewardGraceMs = (c: RlConfig) => Math.min(30_000, c.reward.timeoutMs);
/** Iterations of identical rewards from a source before the run warns about it. */
const CONSTANT_REWARD_ITERATIONS = 3;

/** The reward actor did not answer at all: a source is stuck in code that never yields. */
function stuckReward(c: RlConfig, e: TroupeError): TroupeError {
  const names = c.reward.sources.map((s) => `'${s.name ?? s.type}'`).join(', ');
  return new TroupeError(
    'ACTOR_TIMEOUT',
    `reward: the reward actor did not answer within reward.timeoutMs ${c.reward.timeoutMs} ms + ${rewardGraceMs(c)} ms, so a source (${names}) is stuck in code that never yields; the run stops here (its checkpoints are kept) and the reward thread is replaced`,
    {
      cause: e,
      details: { actor: 'reward', sources: c.reward.sources.map((s) => s.name ?? s.type) },
    },
  );
}

export interface RewardCalls {
  /** Rewards of a batch (evaluation). */
  readonly score: (batch: RewardBatch) => Promise<DetailedReward>;
  /** Rewards of a training batch, watched for a source that scores every completion alike. */
  readonly scoreTrain: (batch: RewardBatch) => Promise<DetailedReward>;
}

export function rewardCalls(
  c: RlConfig,
  reward: Actor<RewardRole>,
  warn: (message: string) => void,
): RewardCalls {
  // The reward actor limits each source (naming it); this limit, a little longer, catches a
  // thread stuck in code that never yields, so that no reward can hang the run.
  const call =
    c.reward.timeoutMs > 0
      ? reward.withTimeout(c.reward.timeoutMs + rewardGraceMs(c))
      : reward.call;
  const watch = new ConstantRewardWatch(
    CONSTANT_REWARD_ITERATIONS,
    Object.fromEntries(
      c.reward.sources.flatMap((s) => {
        const hint = constantRewardHint(s.type);
        return hint ? [[s.name ?? s.type, hint]] : [];
      }),
    ),
  );
  const score = (batch: RewardBatch): Promise<DetailedReward> =>
    call.score(batch).catch((e) => {
      throw hasCode(e, 'ACTOR_TIMEOUT') ? stuckReward(c, e) : e;
    });
  return {
    score,
    scoreTrain: async (batch) => {
      const r = await score(batch);
      for (const message of watch.observe(r.parts)) warn(message);
      return r;
    },
  };
}
