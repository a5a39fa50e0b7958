import { join } from 'node:path';
import { trainLm } from '../algorithms/lm.js';
import type { SftConfig } from '../config/schema.js';
import { RandomStream } from '../kernels/random.js';
import { writeFileAtomic } from '../util/atomic.js';
import { trainerConfig } from './config.js';
import { promptTurns } from './dialogue.js';
import { helpfulRows } from './mix.js';
import { type CaiRun, jsonl, promptItems } from './run.js';
import { type SlRecord, slOutputs, slStage } from './sl.js';
import { runDataStage } from './stage.js';

/*
 * SL-CAI in a run: the revisions (sl-data/, resumable by batch), the SFT data they make (mixed
 * with helpful samples) and the DPO pairs, then `troupe sft` of the policy on them (sft/).
 */

export async function runSl(run: CaiRun): Promise<boolean> {
  const sl = run.c.sl!;
  const where = { file: run.o.file ?? '(config object)', field: 'sl.sft' };
  const dataDir = join(run.dir, 'sl-data');
  // Checked before any generation, so that a bad trainer section fails at once.
  const sftOf = (train: string) =>
    trainerConfig<SftConfig>(
      'sft',
      sl.sft,
      {
        output: join(run.dir, 'sft'),
        seed: run.c.seed,
        model: { path: run.c.policy },
        data: { train, format: 'completion' },
      },
      where,
    );
  sftOf(join(dataDir, 'sft.jsonl'));
  if (!run.done['sl-data']) {
    const t0 = performance.now();
    const prompts = await promptItems(sl.prompts, sl.columns, sl.limit);
    const model = await run.model(sl.model ?? run.c.policy, sl.model ? 'sl.model' : 'policy');
    try {
      run.log(
        `stage sl-data: ${prompts.length} prompts, ${sl.revisions} revisions each, by ${model.describe}`,
      );
      const stage = slStage(
        model,
        run.constitution,
        prompts,
        {
          seed: run.c.seed,
          revisions: sl.revisions,
          shots: sl.fewShot,
          maxTokens: sl.generation.maxNewTokens,
          temperature: sl.generation.temperature,
          topP: sl.generation.topP,
        },
        run.c.batchSize,
      );
      const r = await runDataStage<SlRecord>(dataDir, run.stageConfig('sl-data'), stage, {
        resume: run.resumeOf('sl-data'),
        signal: run.o.signal,
        events: run.o.events,
      });
      if (r.aborted) return false;
      const { sft, pairs } = slOutputs(
        run.constitution,
        run.c.dialogue,
        r.records,
        (x) => promptTurns(x.prompt),
        sl.keep,
      );
      const helpful = sl.helpful
        ? await helpfulRows(sl.helpful, sft.length, {
            seed: run.c.seed,
            model,
            constitution: run.constitution,
            dialogue: run.c.dialogue,
            generation: sl.generation,
            batchSize: run.c.batchSize,
          })
        : [];
      const rows = mixRows(sft, helpful, run.c.seed);
      await writeFileAtomic(join(dataDir, 'sft.jsonl'), jsonl(rows));
      await writeFileAtomic(join(dataDir, 'pairs.jsonl'), jsonl(pairs));
      const rounds = r.records.flatMap((x) => x.rounds);
      await run.finish('sl-data', {
        runDir: dataDir,
        prompts: r.records.length,
        revisionRows: sft.length,
        helpfulRows: helpful.length,
        dpoPairs: pairs.length,
        strippedPreambles: rounds.filter((x) => x.removed !== '').length,
        sft: join(dataDir, 'sft.jsonl'),
        pairs: join(dataDir, 'pairs.jsonl'),
        seconds: (performance.now() - t0) / 1000,
      });
    } finally {
      model.dispose();
    }
  }
  const s = await run.train('sft', (resume) =>
    trainLm(sftOf(join(dataDir, 'sft.jsonl')), run.trainOpts(resume)),
  );
  return s !== undefined;
}

/** Revision rows and helpful rows, shuffled together (seeded). */
function mixRows(
  a: readonly Record<string, unknown>[],
  b: readonly Record<string, unknown>[],
  seed: number,
): Record<string, unknown>[] {
  if (b.length === 0) return [...a];
  return shuffled([...a, ...b], seed);
}

const shuffled = <T>(xs: T[], seed: number) =>
  RandomStream.of({ seed, step: 0, actor: 'cai', purpose: 'sft-mix' }).shuffle(xs);
