import type { LogRecord } from '../actors/protocol.js';
import type { Actor } from '../actors/supervisor.js';
import type { LmConfig, PretrainConfig, SftConfig } from '../config/schema.js';
import {
  collateBlocks,
  collateSft,
  type PackedBlock,
  packDocuments,
  type SftItem,
  tokenizeSft,
} from '../data/batching/index.js';
import { allDroppedError } from '../data/batching/length.js';
import { shard } from '../data/batching/shard.js';
import type { Example } from '../data/datasets/index.js';
import { dataError } from '../data/datasets/location.js';
import { splitOrigin } from '../data/split.js';
import type { BpeTokenizer } from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import type { ProgressState } from '../train/progress.js';
import {
  evalRows,
  guardRun,
  type OpenedRun,
  openRun,
  reduceCapacity,
  runSteps,
  runSupervisor,
  saveTrainerCheckpoint,
  type TrainResult,
  trainableOptions,
  trainLoader,
  trainResult,
} from './common.js';
import { type AlgorithmTopology, launch, plays } from './launch.js';
import { assertFits, lmActors } from './memory-check.js';
import { setupModel, textOf } from './model-setup.js';
import { POLICY, type PolicyArgs, type PolicyRole, type TrainBatch } from './roles/policy.js';

/** What a trainer reports while it runs (the CLI renders it; a library user may plot it). */
export interface TrainEvents {
  onMetrics?(split: 'train' | 'eval', step: number, values: Readonly<Record<string, number>>): void;
  onProgress?(state: ProgressState): void;
  onLog?(record: LogRecord): void;
}

export interface TrainOptions {
  /** Continue the run in `config.output` from its latest checkpoint. */
  readonly resume?: boolean;
  /** Stop between steps when aborted (after writing what has been done). */
  readonly signal?: AbortSignal;
  /** Stop after this many steps in this invocation (the schedule still spans `train.steps`). */
  readonly stopAfterSteps?: number;
  readonly events?: TrainEvents;
}

export type { TrainResult };

type Item = PackedBlock | SftItem;

/**
 * Examples → items: packed blocks (pretrain) or tokenised SFT examples. Documents are tokenised
 * one at a time as the packer takes them. A split that yields nothing is refused naming its file
 * and why: too few tokens for one block, or every example over data.maxLength.
 */
function toItems(
  config: LmConfig,
  tok: BpeTokenizer,
  examples: readonly Example[],
  split: 'train' | 'eval',
): Item[] {
  const origin = splitOrigin(config.data, split);
  if (config.algorithm === 'pretrain') {
    let tokens = 0;
    const docs = function* () {
      for (const e of examples) {
        if (e.kind !== 'text') {
          throw dataError(
            e.where,
            `pretrain reads rows with a 'text' column; this is a '${e.kind}' row (train those with sft)`,
            { kind: e.kind },
          );
        }
        const ids = tok.encode(e.text, { addSpecialTokens: false });
        tokens += ids.length + 1; // and its EOS
        yield ids;
      }
    };
    const { blockSize } = config.data;
    const blocks = packDocuments(docs(), { blockSize, eosId: tok.eosTokenId ?? 0 });
    if (blocks.length === 0) {
      const lower = tokens >= 2 ? `lower data.blockSize to ${tokens - 1} or less` : undefined;
      const fixes = split === 'eval' ? ['add text to it', lower] : [lower, 'add text'];
      const rows = `${examples.length} row${examples.length === 1 ? '' : 's'}, an EOS after each`;
      throw new TroupeError(
        'BAD_DATA',
        `${origin}: ${tokens} token${tokens === 1 ? '' : 's'} (${rows}), fewer than the ` +
          `${blockSize + 1} of one block (data.blockSize ${blockSize} + 1): ` +
          fixes.filter((f) => f !== undefined).join(', or '),
        { details: { split, tokens, blockSize } },
      );
    }
    return blocks;
  }
  const sft = config as SftConfig;
  const opts = { maxLength: config.data.maxLength, overlong: 'drop', appendEos: true } as const;
  const items: SftItem[] = [];
  for (const e of examples) {
    const it = tokenizeSft(tok, e, opts);
    if (!it) continue;
    items.push(
      sft.sft.completionOnly
        ? it
        : { ...it, lossMask: Uint8Array.from(it.ids, (_, i) => (i > 0 ? 1 : 0)) },
    );
  }
  if (items.length === 0) {
    let shortest = Number.POSITIVE_INFINITY;
    for (const e of examples) {
      const n = tokenizeSft(tok, e, { appendEos: true })!.ids.length;
      if (n < shortest) shortest = n;
    }
    throw allDroppedError(origin, 'example', examples.length, config.data.maxLength, shortest);
  }
  return items;
}

function collate(config: LmConfig, padId: number) {
  return (items: Item[]): TrainBatch => {
    const b =
      config.algorithm === 'pretrain'
        ? collateBlocks(items as PackedBlock[])
        : collateSft(items as SftItem[], { padId });
    return { ...b.tokens, lossMask: b.lossMask };
  };
}

/** Rows [begin, end) of a batch, as a batch of their own. */
function rows(b: TrainBatch, begin: number, end: number): TrainBatch {
  const T = b.length;
  return {
    ids: b.ids.slice(begin * T, end * T),
    mask: b.mask.slice(begin * T, end * T),
    lossMask: b.lossMask?.slice(begin * T, end * T),
    batch: end - begin,
    length: T,
  };
}

/**
 * Pretraining (next-token loss on packed blocks) and SFT (loss on completion / assistant tokens)
 * on N data-parallel policy actors. The step loop: batch → shard → train step on every replica
 * (gradients all-reduced) → metrics → eval → checkpoint. Resumable: weights or adapters,
 * optimizer, schedule step, data order and dropout streams all continue exactly.
 */
export async function trainLm(config: LmConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const opened = await openRun(config, opts, config.data.format);
  return guardRun(opened.run, () => trainLmRun(config, opts, opened));
}

async function trainLmRun(
  config: LmConfig,
  opts: TrainOptions,
  { run, state, data }: OpenedRun,
): Promise<TrainResult> {
  const ev = opts.events ?? {};
  const resumed = run.resumedFrom;
  const texts = () => data.train.flatMap(textOf);
  const { source, tok, mconfig } = await setupModel(config, run, ev, texts);
  assertFits(lmActors(config, mconfig)); // before any actor allocates: docs/memory.md
  const trainItems = toItems(config, tok, data.train, 'train');
  const evalItems = data.eval.length > 0 ? toItems(config, tok, data.eval, 'eval') : [];
  const padId = tok.padTokenId ?? tok.eosTokenId ?? 0;
  const loader = trainLoader(config, trainItems, collate(config, padId), state?.loader);

  const supervisor = runSupervisor(run, ev);
  try {
    const cast = await launch(LM_TOPOLOGY, config, {
      supervisor,
      input: {
        model: source ? { source } : { config: mconfig, seed: config.seed },
        resumeFrom: resumed?.dir,
      },
      reduceLength: reduceCapacity(mconfig),
      log: (m) => run.log(m),
    });
    const policies = cast.troupe.replicas(POLICY, 'policy');
    const r = await runSteps(
      config,
      run,
      state?.step ?? 0,
      {
        step: async (step, lr) => {
          const batch = loader.next().value as TrainBatch;
          const shards = shard(batch.batch, policies.length, config.train.gradAccum, (lo, hi) =>
            rows(batch, lo, hi),
          );
          const results = await Promise.all(
            policies.map((p, i) => p.call.trainStep(shards[i], lr, step)),
          );
          const { loss, tokens, gradNorm } = results[0];
          return { loss, tokens, values: { loss, grad_norm: gradNorm, tokens } };
        },
        evaluate: async () =>
          evalItems.length === 0 ? undefined : evalLoss(policies[0], evalItems, config, padId),
        save: (step, lastEval) =>
          saveTrainerCheckpoint(run, policies[0], step, loader.position, lastEval, tok),
      },
      { stopAfterSteps: opts.stopAfterSteps, signal: opts.signal, events: ev },
    );
    return trainResult(run, r, source, cast.started);
  } finally {
    await supervisor.shutdown();
  }
}

/** What a pretraining or SFT run hands its actors. */
export interface LmInput {
  readonly model: PolicyArgs['model'];
  readonly resumeFrom: string | undefined;
}

/** Pretraining and SFT: N data-parallel policy replicas. */
export const LM_TOPOLOGY: AlgorithmTopology<'pretrain' | 'sft', LmConfig, LmInput> = {
  policy: plays(POLICY, {
    args: (c: LmConfig, x: LmInput, p) => ({
      model: x.model,
      ...trainableOptions(c),
      resumeFrom: x.resumeFrom,
      dataParallel: p.dataParallel,
    }),
  }),
};

async function evalLoss(
  policy: Actor<PolicyRole>,
  items: readonly Item[],
  config: LmConfig,
  padId: number,
) {
  const take = evalRows(config, items.length);
  const make = collate(config, padId);
  let nll = 0;
  let tokens = 0;
  for (let i = 0; i < take; i += config.train.batchSize) {
    const batch = make(items.slice(i, Math.min(i + config.train.batchSize, take)) as Item[]);
    const r = await policy.call.evalLoss(batch);
    nll += r.loss * r.tokens;
    tokens += r.tokens;
  }
  const loss = nll / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}

export type { PretrainConfig, SftConfig };
