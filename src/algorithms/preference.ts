import type { Actor } from '../actors/supervisor.js';
import type { DpoConfig, RmConfig } from '../config/schema.js';
import { shard } from '../data/batching/shard.js';
import { lookup, TroupeError } from '../errors.js';
import type { TrainableArgs } from '../policy/trainable.js';
import {
  evalRows,
  guardRun,
  type OpenedRun,
  openRun,
  reduceCapacity,
  runSteps,
  runSupervisor,
  saveTrainerCheckpoint,
  trainableOptions,
  trainLoader,
  trainResult,
} from './common.js';
import { type AlgorithmTopology, launch, plays } from './launch.js';
import type { TrainOptions, TrainResult } from './lm.js';
import {
  needsReference,
  type PreferenceParams,
  preferenceLossEntry,
  REWARD_MODEL_LOSSES,
} from './losses/index.js';
import { assertFits, preferenceActors } from './memory-check.js';
import { setupModel, textOf } from './model-setup.js';
import {
  type Batch,
  collate,
  type Item,
  LAYOUTS,
  type Layout,
  type Pair,
  pairSlice,
  SOFT_LABEL_COLUMN,
  toPairs,
} from './preference-data.js';
import { type PairLearnerRole, PREFERENCE_LEARNER } from './roles/preference-learner.js';
import { REFERENCE, type ReferenceRole } from './roles/reference.js';
import { REWARD_MODEL } from './roles/reward-model.js';

export type PreferenceConfig = RmConfig | DpoConfig;

/** The DPO-family loss's hyperparameters: β and those of its registry entry's the config has. */
function paramsOf(c: DpoConfig): PreferenceParams {
  const fields: Readonly<Record<string, unknown>> = c.dpo;
  const read = preferenceLossEntry(c.dpo.loss).params.filter((p) => fields[p] !== undefined);
  return { beta: c.dpo.beta, ...Object.fromEntries(read.map((p) => [p, fields[p]])) };
}

/** How a run of `c` batches its rows: as its loss's registry entry lays them out (rm: paired). */
const layoutOf = (c: PreferenceConfig): Layout =>
  LAYOUTS[c.algorithm === 'dpo' ? preferenceLossEntry(c.dpo.loss).layout : 'paired'];

/** A reference serves every step when asked to, or when its rows change with each batch (KTO). */
const liveReference = (c: DpoConfig) => c.dpo.reference === 'actor' || !layoutOf(c).precomputable;

/** What a reward-model or DPO run hands its actors. */
export interface PreferenceInput {
  readonly model: TrainableArgs['model'];
  readonly resumeFrom: string | undefined;
  /** The reward model's loss (`rmLossOf`: rm.loss, or what the pairs call for). */
  readonly rmLoss?: string;
}

/**
 * rm.loss, or soft-bradley-terry when the training pairs carry soft labels (`chosen_prob`) and
 * bradley-terry otherwise; soft labels with a margin are refused (the margin is a hard-label
 * notion), and labels a hard loss would ignore are said in the run's log.
 */
export function rmLossOf(c: RmConfig, train: readonly Pair[], log: (m: string) => void): string {
  const labelled = train.filter((p) => p.chosenProb !== undefined).length;
  const loss = c.rm.loss ?? (labelled > 0 ? 'soft-bradley-terry' : 'bradley-terry');
  const { softLabels } = lookup(REWARD_MODEL_LOSSES, loss, 'reward-model loss');
  if (softLabels && c.rm.margin !== 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `rm.margin ${c.rm.margin}: the ${loss} loss (soft labels, ${SOFT_LABEL_COLUMN}) takes no margin; set rm.margin 0, or rm.loss bradley-terry`,
      { details: { field: 'rm.margin' } },
    );
  }
  if (!softLabels && labelled > 0) {
    log(`rm.loss ${loss} ignores the ${SOFT_LABEL_COLUMN} of ${labelled} pairs`);
  } else if (softLabels) {
    log(
      `rm loss ${loss}: ${labelled} of ${train.length} training pairs carry ${SOFT_LABEL_COLUMN} (the others count as 1)`,
    );
  }
  return loss;
}

/** Reward modelling: N data-parallel replicas of the reward model being trained. */
export const RM_TOPOLOGY: AlgorithmTopology<'rm', RmConfig, PreferenceInput> = {
  rm: plays(REWARD_MODEL, {
    args: (c: RmConfig, x: PreferenceInput, p) => ({
      model: x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom,
      loss: x.rmLoss,
      margin: c.rm.margin,
      centerRewardsCoefficient: c.rm.centerRewardsCoefficient,
      dataParallel: p.dataParallel,
    }),
  }),
};

/**
 * The DPO family: N data-parallel learners and, for losses whose registry entry reads reference
 * log-probs (`needsReference`), the frozen reference — precomputed once (then idle) or live.
 */
export const DPO_TOPOLOGY: AlgorithmTopology<'dpo', DpoConfig, PreferenceInput> = {
  dpo: plays(PREFERENCE_LEARNER, {
    args: (c: DpoConfig, x: PreferenceInput, p) => ({
      model: x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom,
      loss: c.dpo.loss,
      lossModule: preferenceLossEntry(c.dpo.loss).module,
      params: paramsOf(c),
      dataParallel: p.dataParallel,
    }),
  }),
  reference: plays(REFERENCE, {
    when: (c: DpoConfig) => needsReference(c.dpo.loss),
    computes: liveReference,
    args: (_c: DpoConfig, x: PreferenceInput) => ({ model: x.model }),
  }),
};

/** Reference log-probs for every pair, computed once (batch by batch) on a reference actor. */
async function precomputeReference(
  ref: Actor<ReferenceRole>,
  pairs: Pair[],
  batchSize: number,
  padId: number,
): Promise<void> {
  const make = collate(padId);
  for (let i = 0; i < pairs.length; i += batchSize) {
    const chunk = pairs.slice(i, i + batchSize);
    const r = await ref.call.sequenceLogps(make(chunk).pairs);
    chunk.forEach((p, j) => {
      p.ref = { chosen: r.chosen[j], rejected: r.rejected[j] };
    });
  }
}

/**
 * Reward modelling (Bradley–Terry on a score head) and the DPO family (DPO, cDPO, IPO, SimPO,
 * ORPO) on preference pairs. Topology: N learner replicas (data parallel) and, for losses with a
 * reference, a frozen reference actor whose log-probs are precomputed once or served per step.
 * The loop reads like the algorithm: batch → reference log-probs → step → metrics → eval → save.
 */
export async function trainPreference(
  config: PreferenceConfig,
  opts: TrainOptions = {},
): Promise<TrainResult> {
  const opened = await openRun(config, opts, config.data.format ?? 'preference');
  return guardRun(opened.run, () => trainPreferenceRun(config, opts, opened));
}

async function trainPreferenceRun(
  config: PreferenceConfig,
  opts: TrainOptions,
  { run, state, data }: OpenedRun,
): Promise<TrainResult> {
  const ev = opts.events ?? {};
  const resumed = run.resumedFrom;
  const texts = () => data.train.flatMap(textOf);
  const { source, tok, mconfig } = await setupModel(config, run, ev, texts);
  assertFits(preferenceActors(config, mconfig)); // before any actor allocates: docs/memory.md
  const train = toPairs(config, tok, data.train, 'train');
  const evalPairs = data.eval.length > 0 ? toPairs(config, tok, data.eval, 'eval') : [];
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const supervisor = runSupervisor(run, ev);
  try {
    const model = source ? { source } : { config: mconfig, seed: config.seed };
    const launched =
      config.algorithm === 'rm'
        ? await launch(RM_TOPOLOGY, config, {
            supervisor,
            input: {
              model,
              resumeFrom: resumed?.dir,
              rmLoss: rmLossOf(config, train, (m) => run.log(m)),
            },
            reduceLength: reduceCapacity(mconfig),
            log: (m) => run.log(m),
          })
        : await launch(DPO_TOPOLOGY, config, {
            supervisor,
            input: { model, resumeFrom: resumed?.dir },
            reduceLength: reduceCapacity(mconfig),
            log: (m) => run.log(m),
          });
    const { troupe } = launched;
    const learners: Actor<PairLearnerRole>[] = troupe.replicas(
      config.algorithm === 'rm' ? REWARD_MODEL : PREFERENCE_LEARNER,
      config.algorithm,
    );
    let reference = troupe.find(REFERENCE, 'reference');
    if (reference && config.algorithm === 'dpo' && !liveReference(config)) {
      await precomputeReference(reference, [...train, ...evalPairs], config.train.batchSize, padId);
      run.log(`reference log-probs precomputed for ${train.length + evalPairs.length} pairs`);
      // Its work is done: free its thread and model (a colocated reference leaves its host be).
      await reference.stop();
      run.log('reference actor stopped');
      reference = undefined;
    }
    // Pairs, or (an unpaired loss: KTO) each pair as a desirable and an undesirable example.
    const layout = layoutOf(config);
    const make = layout.collate(padId);
    const trainItems = layout.items(train);
    const evalItems = layout.items(evalPairs);
    const loader = trainLoader(config, trainItems, make, state?.loader);
    const withReference = async (b: Batch): Promise<Batch> =>
      reference && !b.ref ? { ...b, ref: await reference.call.sequenceLogps(b.pairs) } : b;
    const r = await runSteps(
      config,
      run,
      state?.step ?? 0,
      {
        step: async (step, lr) => {
          const t0 = performance.now();
          const batch = await withReference(loader.next().value as Batch);
          const shards = shard(
            batch.pairs.batch / 2,
            learners.length,
            config.train.gradAccum,
            (lo, hi) => pairSlice(batch, lo, hi),
          );
          const results = await Promise.all(
            learners.map((l, i) =>
              l.call.step(
                shards[i].map((x) => ({ batch: x.pairs, ref: x.ref })),
                lr,
                step,
              ),
            ),
          );
          const { loss, pairs, gradNorm, metrics } = results[0];
          const pairsPerS = pairs / ((performance.now() - t0) / 1000);
          return {
            loss,
            values: { loss, grad_norm: gradNorm, pairs, pairs_per_s: pairsPerS, ...metrics },
          };
        },
        evaluate: async () =>
          evalItems.length === 0
            ? undefined
            : evaluatePairs(learners[0], evalItems, config, make, withReference),
        save: (step, lastEval) =>
          saveTrainerCheckpoint(run, learners[0], step, loader.position, lastEval, tok),
      },
      { stopAfterSteps: opts.stopAfterSteps, signal: opts.signal, events: ev },
    );
    return trainResult(run, r, source, launched.started);
  } finally {
    await supervisor.shutdown();
  }
}

async function evaluatePairs(
  learner: Actor<PairLearnerRole>,
  pairs: Item[],
  config: PreferenceConfig,
  make: (items: Item[]) => Batch,
  withReference: (b: Batch) => Promise<Batch>,
): Promise<Record<string, number>> {
  const take = evalRows(config, pairs.length);
  const sums: Record<string, number> = {};
  let n = 0;
  for (let i = 0; i < take; i += config.train.batchSize) {
    const b = await withReference(make(pairs.slice(i, Math.min(i + config.train.batchSize, take))));
    const r = await learner.call.evaluate(b.pairs, b.ref);
    const w = b.pairs.batch / 2;
    for (const [k, v] of Object.entries({ loss: r.loss, ...r.metrics }))
      sums[k] = (sums[k] ?? 0) + v * w;
    n += w;
  }
  return Object.fromEntries([...Object.entries(sums).map(([k, v]) => [k, v / n]), ['pairs', n]]);
}
