/*
 * Online RL's trainer: the run's setup, then each iteration as four named calls. Its parts are
 * in rl/: the topology (topology.ts), the rollouts (rollouts.ts, with the batch sampled ahead
 * and what a checkpoint keeps of it in pending.ts), the learners (learners.ts), the reward
 * calls (rewards.ts) and the evaluation (evaluate.ts).
 */
import { join } from 'node:path';
import type { RoleRef } from '../actors/role.js';
import type { RlConfig } from '../config/schema.js';
import { tokenizePrompt } from '../data/batching/index.js';
import { readModelConfig } from '../policy/io.js';
import { type AssembleParams, experienceMetrics } from '../rollout/assemble.js';
import { AdaptiveKLController, FixedKLController, type KlController } from '../rollout/kl.js';
import { type MakerOptions, makeExperience, type Scorers } from '../rollout/maker.js';
import { PhaseTimes } from '../rollout/timing.js';
import {
  guardRun,
  type OpenedRun,
  openModelSource,
  openRun,
  reduceCapacity,
  runSteps,
  runSupervisor,
  type StepReport,
  saveTrainerCheckpoint,
  trainResult,
} from './common.js';
import { launch } from './launch.js';
import type { TrainOptions, TrainResult } from './lm.js';
import { assertFits } from './memory-check.js';
import { rewardModelConfigs, rlActors } from './memory-check-rl.js';
import { setupModel } from './model-setup.js';
import { rlEvaluator } from './rl/evaluate.js';
import { Learners } from './rl/learners.js';
import { modelRewardSources, rewardCalls } from './rl/rewards.js';
import { Rollouts, toPrompts } from './rl/rollouts.js';
import { referenceLogprobs } from './rl/spread.js';
import { RL_TOPOLOGY } from './rl/topology.js';
import { CRITIC } from './roles/critic.js';
import { GENERATOR } from './roles/generator.js';
import { POLICY } from './roles/policy.js';
import { REFERENCE } from './roles/reference.js';
import { REWARD, type RewardArgs, type RewardRole } from './roles/reward.js';

export { RL_TOPOLOGY, type RlInput } from './rl/topology.js';

export interface RlTrainOptions extends TrainOptions {
  /**
   * The reward actor's role (default REWARD, which hosts `reward.sources`): a role of your own
   * that takes the same arguments, e.g. one wrapping your reward model.
   */
  readonly rewardRole?: RoleRef<RewardRole, RewardArgs>;
  /**
   * Roles of your own in place of the topology's, by actor name (each taking the same arguments
   * and serving the same methods as the one it replaces): `{ generator: MY_GENERATOR }`.
   */
  readonly roles?: Readonly<Partial<Record<keyof typeof RL_TOPOLOGY, RoleRef<unknown, unknown>>>>;
}

/** Phases of one iteration, timed on the controller (seconds). */
const PHASES = ['generate', 'reference', 'reward', 'critic', 'logprobs', 'update', 'sync'] as const;

/**
 * Online RL: PPO (critic + GAE), GRPO, RLOO and REINFORCE++ over one loop. Topology: policy
 * replicas (trainers), a generator (samples; pulls the policy's weights from shared memory), a
 * reward actor (the configured sources), and a reference and a critic when the algorithm uses
 * them. Each iteration reads like the algorithm (`step` below):
 *   rollouts.next → makeExperience (reference ∥ reward ∥ critic ∥ old log-probs → KL shaping →
 *   advantages) → learners.update (epochs × minibatches, policy ∥ critic) → learners.publish.
 * With `rollout.offPolicy` the next batch is generated while this one trains (one step stale).
 */
export async function trainRl(config: RlConfig, opts: RlTrainOptions = {}): Promise<TrainResult> {
  const opened = await openRun(config, opts, 'prompt');
  return guardRun(opened.run, () => trainRlRun(config, opts, opened));
}

async function trainRlRun(
  c: RlConfig,
  opts: RlTrainOptions,
  { run, state, data }: OpenedRun,
): Promise<TrainResult> {
  const ev = opts.events ?? {};
  const resumed = run.resumedFrom;
  const prompts = () =>
    data.train.flatMap((e) =>
      e.kind === 'prompt' && typeof e.prompt === 'string' ? [e.prompt] : [],
    );
  const { source, tok, mconfig } = await setupModel(c, run, ev, prompts);
  // A PPO run directory as critic.path: its checkpoint's critic/, not its policy.
  const criticSource = c.critic.path
    ? await openModelSource(run, c.critic.path, 'critic.path', {
        onLog: ev.onLog,
        runSubdir: 'critic',
      })
    : undefined;
  const itemsOf = (xs: typeof data.train) => xs.map((e) => tokenizePrompt(tok, e));
  const train = toPrompts(c, tok, itemsOf(data.train), 'train');
  const evalPrompts = toPrompts(c, tok, itemsOf(data.eval), 'eval');
  const eos = tok.eosTokenId;
  const supervisor = runSupervisor(run, ev);
  try {
    const roles: Readonly<Record<string, RoleRef<unknown, unknown> | undefined>> = {
      ...opts.roles,
      ...(opts.rewardRole ? { reward: opts.rewardRole } : {}),
    };
    /** The role actor `name` plays: the topology's, or the caller's own. */
    const roleOf = <R, A>(name: keyof typeof RL_TOPOLOGY, own: RoleRef<R, A>) =>
      (roles[name] as RoleRef<R, A> | undefined) ?? own;
    // A critic of another model (critic.path) all-reduces its own parameters.
    const criticConfig = criticSource ? await readModelConfig(criticSource) : mconfig;
    const rewardSources = await modelRewardSources(c, run, ev.onLog);
    // before any actor allocates: docs/memory.md
    assertFits(rlActors(c, mconfig, criticConfig, await rewardModelConfigs(rewardSources)));
    const cast = await launch(RL_TOPOLOGY, c, {
      supervisor,
      input: {
        model: source ? { source } : { config: mconfig, seed: c.seed },
        criticSource,
        rewardSources,
        resumeFrom: resumed?.dir,
      },
      reduceLength: (actor) => reduceCapacity(actor === 'critic' ? criticConfig : mconfig),
      roles,
      log: (m) => run.log(m),
    });
    const { troupe } = cast;
    const referenceRef = roleOf('reference', REFERENCE);
    // one beside each policy replica when colocated with them
    const references = troupe.find(referenceRef, 'reference')
      ? troupe.replicas(referenceRef, 'reference')
      : [];
    const reference = references[0];
    const criticRef = roleOf('critic', CRITIC);
    const rollouts = await Rollouts.open({
      c,
      generators: troupe.replicas(roleOf('generator', GENERATOR), 'generator'),
      train,
      eosTokenId: eos,
      padTokenId: tok.padTokenId ?? eos ?? 0,
      position: state?.loader,
      resumedDir: resumed?.dir,
    });
    const learners = new Learners(
      c,
      troupe.replicas(roleOf('policy', POLICY), 'policy'),
      troupe.find(criticRef, 'critic') ? troupe.replicas(criticRef, 'critic') : [],
      rollouts,
    );
    const rewards = rewardCalls(c, troupe.actor(roleOf('reward', REWARD), 'reward'), (message) => {
      run.log(`warning: ${message}`);
      ev.onLog?.({ actor: 'trainer', level: 'warn', message, time: Date.now() });
    });
    const savedKl = (state?.extra as { klCoef?: number } | undefined)?.klCoef;
    const kl: KlController =
      c.rl.kl.target !== undefined
        ? new AdaptiveKLController(savedKl ?? c.rl.kl.coef, c.rl.kl.target, c.rl.kl.horizon)
        : new FixedKLController(c.rl.kl.coef);
    // The generator starts on the policy's weights (a resumed policy's, not the initial ones).
    await learners.publish(state?.step ?? 0);
    await rollouts.synced();

    const maker: MakerOptions = {
      samplesPerPrompt: c.rollout.samplesPerPrompt,
      decode: (ids) => tok.decode([...ids]),
      eosTokenId: eos,
    };
    const scorers: Scorers = {
      ...learners.scorers(),
      reference: reference
        ? (frame) => referenceLogprobs(references, frame, c.rollout.samplesPerPrompt)
        : undefined,
      reward: rewards.scoreTrain,
    };
    const assembleParams = (): AssembleParams => ({
      estimator: c.rl.estimator,
      gamma: c.rl.gamma,
      lambda: c.rl.lambda,
      whiten: c.rl.whiten,
      normByStd: c.rl.normByStd,
      klCoef: c.rl.kl.mode === 'reward' && reference ? kl.value : 0,
      klEstimator: c.rl.kl.estimator,
      rewardClip: c.rl.rewardClip,
      rewardNormalize: c.rl.rewardNormalize,
    });

    // One per thread: usage is counted per thread, which colocated actors share.
    const actors = troupe.hosts();
    const step = async (s: number, lr: number): Promise<StepReport> => {
      const times = new PhaseTimes(PHASES);
      const usage0 = actors.map((a) => a.usage());
      const t0 = performance.now();
      const batch = await times.time('generate', () => rollouts.next(s));
      const made = await makeExperience(
        batch.prompts,
        batch.generated,
        scorers,
        assembleParams(),
        maker,
      );
      times.add(made.seconds);
      const { experience } = made;
      const updated = await times.time('update', () => learners.update(experience, s, lr));
      await times.time('sync', () => learners.publish(s + 1));
      kl.update(made.meanKl, experience.shape.batch);
      const tokens = experience.actionMask.reduce((a, m) => a + m, 0);
      // Round trips minus the actors' own time: encoding, posting, queueing, decoding.
      const messaging = actors.reduce((sum, a, i) => {
        const u = a.usage();
        return sum + (u.callMs - usage0[i].callMs - (u.busyMs - usage0[i].busyMs)) / 1000;
      }, 0);
      const values = {
        ...experienceMetrics(experience),
        ...made.metrics,
        ...updated,
        kl_coef: kl.value,
        'rollout/weights_version': batch.weightsStep,
        ...Object.fromEntries(PHASES.map((p) => [`timing/${p}_s`, times.seconds[p]])),
        'timing/step_s': (performance.now() - t0) / 1000,
        'timing/messaging_s': messaging,
      };
      return { loss: updated['actor/loss'] ?? 0, tokens, values };
    };

    const evaluate = rlEvaluator({
      c,
      prompts: evalPrompts,
      rollouts,
      score: rewards.score,
      maker,
    });
    const r = await runSteps(
      c,
      run,
      state?.step ?? 0,
      {
        step,
        evaluate,
        save: async (s, lastEval) => {
          await rollouts.synced();
          const critic = learners.critic;
          return saveTrainerCheckpoint(
            run,
            learners.policy[0],
            s,
            rollouts.position,
            lastEval,
            tok,
            {
              best: { key: 'reward', mode: 'max' },
              also: async (dir) => {
                if (critic) await critic.call.saveCheckpoint(join(dir, 'critic'));
                await rollouts.saveInto(dir);
              },
              extra: { klCoef: kl.value },
            },
          );
        },
      },
      { stopAfterSteps: opts.stopAfterSteps, signal: opts.signal, events: ev },
    );
    await rollouts.drain();
    return trainResult(run, r, source, cast.started);
  } finally {
    await supervisor.shutdown();
  }
}
