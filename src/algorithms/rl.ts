/*
 * Online RL's topology (RL_TOPOLOGY) and trainer. Past 300 lines because `trainRl` is still one
 * function whose closures share the run's state; issue #16 item 3 splits it into rl/rollouts.ts,
 * rl/learners.ts and rl/evaluate.ts with the step as four named calls.
 */
import { join } from 'node:path';
import * as Comlink from 'comlink';
import type { RoleRef } from '../actors/role.js';
import type { RlAlgorithm, RlConfig } from '../config/schema.js';
import { DataLoader, type PromptItem, tokenizePrompt } from '../data/batching/index.js';
import { promptsDroppedError } from '../data/batching/length.js';
import type { Example } from '../data/datasets/index.js';
import { splitOrigin } from '../data/split.js';
import type { BpeTokenizer } from '../data/tokenizer/index.js';
import { hasCode, TroupeError } from '../errors.js';
import { readModelConfig } from '../policy/io.js';
import type { ModelSource } from '../policy/source.js';
import type { DetailedReward, RewardBatch } from '../reward/types.js';
import { ConstantRewardWatch, constantRewardHint } from '../reward/watch.js';
import {
  type AssembleParams,
  experienceMetrics,
  minibatchRows,
  sliceExperience,
} from '../rollout/assemble.js';
import { encodeExperience } from '../rollout/codec.js';
import type { Experience } from '../rollout/experience.js';
import { AdaptiveKLController, FixedKLController, type KlController } from '../rollout/kl.js';
import {
  type MakerOptions,
  makeExperience,
  type PromptRow,
  rewardBatchOf,
  type Scorers,
} from '../rollout/maker.js';
import type { RunDir } from '../train/run-dir.js';
import type { TrainerState } from '../train/trainer-state.js';
import {
  guardRun,
  openModelSource,
  openRun,
  reduceCapacity,
  runSteps,
  runSupervisor,
  type StepReport,
  saveTrainerCheckpoint,
  trainableOptions,
  trainResult,
} from './common.js';
import { type AlgorithmTopology, launch, plays } from './launch.js';
import type { TrainEvents, TrainOptions, TrainResult } from './lm.js';
import { modelConfig, runTokenizer, startSource } from './model-setup.js';
import { loadPending, savePending } from './rl-pending.js';
import { CRITIC } from './roles/critic.js';
import { GENERATOR, type GeneratedBatch } from './roles/generator.js';
import { POLICY, type PolicyArgs, type RlStepMetrics } from './roles/policy.js';
import { REFERENCE } from './roles/reference.js';
import { REWARD, type RewardArgs, type RewardRole } from './roles/reward.js';

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
type Phase = (typeof PHASES)[number];

type Prompt = PromptRow & { readonly ids: number[] };

/** Prompts of 1…maxLength tokens; a split that keeps none is refused naming its file and why. */
function toPrompts(
  c: RlConfig,
  tok: BpeTokenizer,
  items: readonly PromptItem[],
  split: 'train' | 'eval',
): Prompt[] {
  const kept = items.filter((it) => it.ids.length > 0 && it.ids.length <= c.data.maxLength);
  if (items.length > 0 && kept.length === 0) {
    const lengths = items.map((it) => it.ids.length);
    throw promptsDroppedError(splitOrigin(c.data, split), lengths, c.data.maxLength);
  }
  return kept.map((it) => ({
    ids: it.ids,
    text: typeof it.prompt === 'string' ? it.prompt : tok.decode(it.ids),
    columns: it.extra,
  }));
}

const usesReference = (c: RlConfig) => c.rl.kl.mode !== 'none' && c.rl.kl.coef > 0;

/** What an RL run hands its actors. */
export interface RlInput {
  /** The policy's start (also the generator's, the reference's and by default the critic's). */
  readonly model: PolicyArgs['model'];
  readonly criticSource: ModelSource | undefined;
  /** The reward sources, `model` paths resolved. */
  readonly rewardSources: RlConfig['reward']['sources'];
  readonly resumeFrom: string | undefined;
}

/**
 * Online RL: policy replicas (trainers), a generator (samples; pulls the policy's weights from
 * shared memory, so it starts after the policy), a reward actor (the configured sources, on
 * `cpu` unless placed), and a reference (when a KL is used) and a critic (the `gae` estimator).
 */
export const RL_TOPOLOGY: AlgorithmTopology<RlAlgorithm, RlConfig, RlInput> = {
  policy: plays(POLICY, {
    args: (c: RlConfig, x: RlInput, p) => ({
      model: x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom,
      dataParallel: p.dataParallel,
      rl: {
        temperature: c.rollout.temperature,
        loss: {
          clipLow: c.rl.clipLow,
          clipHigh: c.rl.clipHigh,
          dualClip: c.rl.dualClip,
          aggMode: c.rl.aggMode,
          entropyCoef: c.rl.entropyCoef,
          klLoss:
            c.rl.kl.mode === 'loss' && c.rl.kl.coef > 0
              ? { coef: c.rl.kl.coef, estimator: c.rl.kl.estimator }
              : undefined,
        },
      },
    }),
  }),
  generator: plays(GENERATOR, {
    needs: ['policy'],
    retryCrashed: true,
    args: async (_c: RlConfig, x: RlInput, _p, started) => ({
      model: x.model,
      weights: await started.actor(POLICY, 'policy').call.weightsHandle(),
    }),
  }),
  reward: plays(REWARD, {
    placement: { backend: 'cpu' },
    computes: () => false,
    retryCrashed: true,
    args: (c: RlConfig, x: RlInput) => ({
      sources: x.rewardSources,
      poolThreads: c.reward.poolThreads,
      timeoutMs: c.reward.timeoutMs,
    }),
  }),
  reference: plays(REFERENCE, {
    when: usesReference,
    retryCrashed: true,
    args: (c: RlConfig, x: RlInput) => ({ model: x.model, temperature: c.rollout.temperature }),
  }),
  critic: plays(CRITIC, {
    when: (c: RlConfig) => c.rl.estimator === 'gae',
    args: (c: RlConfig, x: RlInput, p) => ({
      model: x.criticSource ? { source: x.criticSource } : x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom ? join(x.resumeFrom, 'critic') : undefined,
      loss: {
        clip: c.critic.valueClip > 0 ? c.critic.valueClip : undefined,
        aggMode: c.rl.aggMode,
      },
      dataParallel: p.dataParallel,
    }),
  }),
};

/**
 * The reward sources with each `model` source's path resolved here (a run directory to its
 * checkpoint, said in the log), so that the reward actor loads the checkpoint named in the log.
 */
async function modelRewardSources(
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

/** The micro-batches of each replica: rows split evenly over replicas, then over `micro`. */
function shardRows(rows: readonly number[], replicas: number, micro: number): number[][][] {
  return Array.from({ length: replicas }, (_, r) => {
    const mine = rows.slice(
      Math.floor((r * rows.length) / replicas),
      Math.floor(((r + 1) * rows.length) / replicas),
    );
    const parts: number[][] = [];
    for (let k = 0; k < micro; k++) {
      const part = mine.slice(
        Math.floor((k * mine.length) / micro),
        Math.floor(((k + 1) * mine.length) / micro),
      );
      if (part.length > 0) parts.push(part);
    }
    return parts;
  });
}

/** Mean of each key over a list of metric records. */
function meanOf(records: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / records.length]));
}

/**
 * Online RL: PPO (critic + GAE), GRPO, RLOO and REINFORCE++ over one loop. Topology: policy
 * replicas (trainers), a generator (samples; pulls the policy's weights from shared memory), a
 * reward actor (the configured sources), and a reference and a critic when the algorithm uses
 * them. Each iteration reads like the algorithm:
 *   generate → (reference ∥ reward ∥ critic ∥ old log-probs) → KL shaping → advantages →
 *   epochs × minibatches of PPO updates (policy ∥ critic) → publish weights → generator sync.
 * With `rollout.offPolicy` the next batch is generated while this one trains (one step stale).
 */
export async function trainRl(config: RlConfig, opts: RlTrainOptions = {}): Promise<TrainResult> {
  const { run, state, data } = await openRun(config, opts, 'prompt');
  return guardRun(run, () => trainRlRun(config, opts, run, state, data));
}

async function trainRlRun(
  c: RlConfig,
  opts: RlTrainOptions,
  run: RunDir,
  state: TrainerState | undefined,
  data: { train: Example[]; eval: Example[] },
): Promise<TrainResult> {
  const ev = opts.events ?? {};
  const resumed = run.resumedFrom;
  const promptTexts = (xs: typeof data.train) =>
    xs.flatMap((e) => (e.kind === 'prompt' && typeof e.prompt === 'string' ? [e.prompt] : []));
  const source = await startSource(c, run, ev);
  // A PPO run directory as critic.path: its checkpoint's critic/, not its policy.
  const criticSource = c.critic.path
    ? await openModelSource(run, c.critic.path, 'critic.path', {
        onLog: ev.onLog,
        runSubdir: 'critic',
      })
    : undefined;
  const tok = await runTokenizer(c, run, () => promptTexts(data.train), source);
  const mconfig = await modelConfig(c, tok, source);
  const itemsOf = (xs: typeof data.train) => xs.map((e) => tokenizePrompt(tok, e));
  const train = toPrompts(c, tok, itemsOf(data.train), 'train');
  const evalPrompts = toPrompts(c, tok, itemsOf(data.eval), 'eval');
  const eos = tok.eosTokenId;
  const pad = tok.padTokenId ?? eos ?? 0;
  const n = c.rollout.samplesPerPrompt;
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
    const cast = await launch(RL_TOPOLOGY, c, {
      supervisor,
      input: {
        model: source ? { source } : { config: mconfig, seed: c.seed },
        criticSource,
        rewardSources: await modelRewardSources(c, run, ev.onLog),
        resumeFrom: resumed?.dir,
      },
      reduceLength: (actor) => reduceCapacity(actor === 'critic' ? criticConfig : mconfig),
      roles,
      log: (m) => run.log(m),
    });
    const { troupe } = cast;
    const policy = troupe.replicas(roleOf('policy', POLICY), 'policy');
    const generator = troupe.actor(roleOf('generator', GENERATOR), 'generator');
    const reward = troupe.actor(roleOf('reward', REWARD), 'reward');
    const reference = troupe.find(roleOf('reference', REFERENCE), 'reference');
    const criticRef = roleOf('critic', CRITIC);
    const critics = troupe.find(criticRef, 'critic') ? troupe.replicas(criticRef, 'critic') : [];
    const critic = critics[0];
    // The reward actor limits each source (naming it); this limit, a little longer, catches a
    // thread stuck in code that never yields, so that no reward can hang the run.
    const rewardCall =
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
    const savedKl = (state?.extra as { klCoef?: number } | undefined)?.klCoef;
    const kl: KlController =
      c.rl.kl.target !== undefined
        ? new AdaptiveKLController(savedKl ?? c.rl.kl.coef, c.rl.kl.target, c.rl.kl.horizon)
        : new FixedKLController(c.rl.kl.coef);
    const loader = new DataLoader(train, {
      batchSize: c.train.batchSize,
      seed: c.seed,
      collate: (xs: Prompt[]) => xs,
      dropLast: train.length >= c.train.batchSize,
      position: state?.loader,
    });
    // Start the generator on the policy's weights (a resumed policy's, not the initial ones).
    const weightsStep = new WeightsSteps();
    weightsStep.published(await policy[0].call.publishWeights(), state?.step ?? 0);
    await generator.call.sync();

    /**
     * The generator's rows for `prompts` × n samples. A generator that crashed is restarted by
     * the supervisor and syncs the latest weights as it starts; the call is retried there.
     */
    const sample = (prompts: readonly Prompt[], step: number, greedy = false) =>
      generator.call.generate(
        prompts.flatMap((p) => Array.from({ length: greedy ? 1 : n }, () => p.ids)),
        {
          maxNewTokens: c.rollout.maxNewTokens,
          temperature: greedy ? 0 : c.rollout.temperature,
          topK: greedy ? 0 : c.rollout.topK,
          topP: greedy ? 1 : c.rollout.topP,
          stopTokenIds: eos === undefined ? [] : [eos],
          padTokenId: pad,
          sampling: greedy
            ? undefined
            : { seed: c.seed, step, actor: 'generator', purpose: 'sample' },
        },
      );

    const maker: MakerOptions = {
      samplesPerPrompt: n,
      decode: (ids) => tok.decode([...ids]),
      eosTokenId: eos,
    };
    const score = (batch: RewardBatch): Promise<DetailedReward> =>
      rewardCall.score(batch).catch((e) => {
        throw hasCode(e, 'ACTOR_TIMEOUT') ? stuckReward(c, e) : e;
      });
    /** Training batches' rewards, watched for a source that scores every completion alike. */
    const scoreTrain = async (batch: RewardBatch): Promise<DetailedReward> => {
      const r = await score(batch);
      for (const message of watch.observe(r.parts)) {
        run.log(`warning: ${message}`);
        ev.onLog?.({ actor: 'trainer', level: 'warn', message, time: Date.now() });
      }
      return r;
    };
    const scorers: Scorers = {
      policy: (frame) => policy[0].call.actionLogprobs(frame),
      reference: reference ? (frame) => reference.call.actionLogprobs(frame) : undefined,
      critic: critic ? (frame) => critic.call.values(frame) : undefined,
      reward: scoreTrain,
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

    /** epochs × minibatches optimiser steps of the policy (and the critic, in parallel). */
    const update = async (e: Experience, step: number, lr: number) => {
      const policyRecords: Record<string, number>[] = [];
      const criticRecords: Record<string, number>[] = [];
      const criticLr = lr * ((c.critic.lr ?? c.optim.lr) / c.optim.lr);
      let k = 0;
      for (let epoch = 0; epoch < c.rl.epochs; epoch++) {
        const batches = minibatchRows(e.shape.batch, c.rl.miniBatches, {
          seed: c.seed,
          step,
          actor: 'trainer',
          purpose: `minibatch/${epoch}`,
        });
        for (const rows of batches) {
          const micro = shardRows(rows, policy.length, c.train.gradAccum);
          // Fresh frames for each learner, handed over (transferred), not copied.
          const frames = (rs: number[][]) => {
            const fs = rs.map((r) => encodeExperience(sliceExperience(e, r)));
            return Comlink.transfer(fs, fs);
          };
          const key = step * c.rl.epochs * c.rl.miniBatches + k++;
          const criticMicro = shardRows(rows, critics.length, 1);
          const [ps, cs] = await Promise.all([
            Promise.all(policy.map((p, i) => p.call.step(frames(micro[i]), lr, key))),
            Promise.all(critics.map((v, i) => v.call.step(frames(criticMicro[i]), criticLr, key))),
          ]);
          policyRecords.push(record('actor', ps[0]));
          if (cs.length > 0) criticRecords.push(record('critic', cs[0]));
        }
      }
      return { ...meanOf(policyRecords), ...(critic ? meanOf(criticRecords) : {}) };
    };

    let pending: { prompts: Prompt[]; gen: Promise<GeneratedBatch> } | undefined;
    let pendingSync: Promise<number> | undefined;
    let savedPosition = loader.position;
    // Off-policy: the batch the checkpoint's run had generated ahead, for the step after it.
    const restored =
      resumed && c.rollout.offPolicy ? await loadPending(resumed.dir, -1) : undefined;
    if (restored) {
      weightsStep.published(-1, restored.weightsStep); // -1: never a published (even) version
      pending = { prompts: loader.next().value as Prompt[], gen: Promise.resolve(restored.batch) };
    }

    // One per thread: usage is counted per thread, which colocated actors share.
    const actors = troupe.hosts();
    const step = async (s: number, lr: number): Promise<StepReport> => {
      const t = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<Phase, number>;
      const usage0 = actors.map((a) => a.usage());
      const t0 = performance.now();
      await pendingSync;
      let prompts: Prompt[];
      let g: GeneratedBatch;
      if (pending) {
        prompts = pending.prompts;
        g = await pending.gen;
        pending = undefined;
      } else {
        prompts = loader.next().value as Prompt[];
        g = await sample(prompts, s);
      }
      t.generate = (performance.now() - t0) / 1000;
      savedPosition = loader.position;
      if (c.rollout.offPolicy && s + 1 < c.train.steps) {
        const next = loader.next().value as Prompt[];
        pending = { prompts: next, gen: sample(next, s + 1) };
      }
      const made = await makeExperience(prompts, g, scorers, assembleParams(), maker);
      const { experience, meanKl } = made;
      Object.assign(t, made.seconds);
      const t1 = performance.now();
      const updated = await update(experience, s, lr);
      t.update = (performance.now() - t1) / 1000;
      const t2 = performance.now();
      weightsStep.published(await policy[0].call.publishWeights(), s + 1);
      pendingSync = generator.call.sync();
      if (!c.rollout.offPolicy) await pendingSync;
      t.sync = (performance.now() - t2) / 1000;
      kl.update(meanKl, experience.shape.batch);
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
        'rollout/weights_version': weightsStep.of(g.version),
        ...Object.fromEntries(PHASES.map((p) => [`timing/${p}_s`, t[p]])),
        'timing/step_s': (performance.now() - t0) / 1000,
        'timing/messaging_s': messaging,
      };
      return { loss: updated['actor/loss'] ?? 0, tokens, values };
    };

    const evaluate = async (s: number) => {
      if (evalPrompts.length === 0) return undefined;
      const take =
        c.train.evalBatches === 0
          ? evalPrompts.length
          : Math.min(evalPrompts.length, c.train.evalBatches * c.train.batchSize);
      const records: { rows: number; values: Record<string, number> }[] = [];
      for (let i = 0; i < take; i += c.train.batchSize) {
        const prompts = evalPrompts.slice(i, Math.min(i + c.train.batchSize, take));
        const g = await sample(prompts, s, true);
        const r = await score(rewardBatchOf(prompts, g, { ...maker, samplesPerPrompt: 1 }));
        const values: Record<string, number> = {
          reward: r.total.reduce((a, b) => a + b, 0) / r.total.length,
          response_length: g.responses.reduce((a, x) => a + x.length, 0) / g.responses.length,
        };
        for (const [k, v] of Object.entries(r.parts))
          values[`reward/${k}`] = v.reduce((a, b) => a + b, 0) / v.length;
        records.push({ rows: prompts.length, values });
      }
      const total = records.reduce((a, r) => a + r.rows, 0);
      const out: Record<string, number> = { prompts: total };
      for (const r of records)
        for (const [k, v] of Object.entries(r.values))
          out[k] = (out[k] ?? 0) + (v * r.rows) / total;
      return out;
    };

    const r = await runSteps(
      c,
      run,
      state?.step ?? 0,
      {
        step,
        evaluate,
        save: async (s, lastEval) => {
          await pendingSync;
          return saveTrainerCheckpoint(run, policy[0], s, savedPosition, lastEval, tok, {
            best: { key: 'reward', mode: 'max' },
            also: async (dir) => {
              if (critic) await critic.call.saveCheckpoint(join(dir, 'critic'));
              const ahead = pending && (await pending.gen);
              if (ahead) {
                await savePending(dir, {
                  batch: ahead,
                  weightsStep: weightsStep.of(ahead.version),
                });
              }
            },
            extra: { klCoef: kl.value },
          });
        },
      },
      { stopAfterSteps: opts.stopAfterSteps, signal: opts.signal, events: ev },
    );
    await pending?.gen.catch(() => undefined);
    return trainResult(run, r, source, cast.started);
  } finally {
    await supervisor.shutdown();
  }
}

/**
 * `rollout/weights_version`: the policy step whose weights sampled a batch (0: the start weights;
 * one behind the step on-policy, two with `offPolicy`), so it continues across a resume. The
 * version the generator reports is the shared-memory write count of this process, from 0 again
 * after a resume; this maps it to steps (the last few publishes are all a batch can be from).
 */
class WeightsSteps {
  private readonly steps = new Map<number, number>();

  published(version: number, step: number): void {
    this.steps.set(version, step);
    if (this.steps.size > 4) this.steps.delete(this.steps.keys().next().value!);
  }

  of(version: number): number {
    const step = this.steps.get(version);
    if (step === undefined) {
      throw new TroupeError(
        'UNSUPPORTED',
        `rl: the generator sampled with weights version ${version}, which this run did not publish`,
      );
    }
    return step;
  }
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

/** An RL learner's step as metrics under its namespace (`actor/loss`, `critic/grad_norm`, …). */
function record(ns: 'actor' | 'critic', m: RlStepMetrics): Record<string, number> {
  return { [`${ns}/loss`]: m.loss, [`${ns}/grad_norm`]: m.gradNorm, ...m.metrics };
}
