import { resolve } from 'node:path';
import { describeFailure } from '../algorithms/run-guard.js';
import { TroupeError } from '../errors.js';
import { type CaiConfig, checkTrainerSections } from './config.js';
import { runRl } from './pipeline-rl.js';
import { runSl } from './pipeline-sl.js';
import { CaiRun, type CaiRunOptions } from './run.js';

export type { CaiRunOptions, CaiStage } from './run.js';

/*
 * The Constitutional AI pipeline in one run directory:
 *
 *   sl-data/  SL-CAI's critiques and revisions (records.jsonl), then sft.jsonl and pairs.jsonl
 *   sft/      `troupe sft` of the policy on sft.jsonl: the SL-CAI model
 *   rl-data/  RL-CAI's response pairs and AI labels (records.jsonl), then rm-pairs.jsonl, prompts.jsonl
 *   rm/       `troupe rm` on rm-pairs.jsonl (soft-bradley-terry)
 *   ppo/      `troupe ppo` from the SL-CAI model against that reward model, KL to the SL-CAI model
 *   stages.json  what each finished stage produced; log.txt; config.yaml / config.json
 *
 * Each stage is resumable as its trainer is (a data stage by its batches); a resumed run skips
 * the stages stages.json lists as done and resumes the one under way.
 */

export interface CaiResult {
  readonly runDir: string;
  readonly aborted: boolean;
  /** What each finished stage produced (stages.json). */
  readonly stages: Readonly<Record<string, Record<string, unknown>>>;
}

/** Run the CAI pipeline (the stages the config has, or `o.stages`). */
export async function runCai(config: CaiConfig, o: CaiRunOptions = {}): Promise<CaiResult> {
  const stages = o.stages ?? (['sl', 'rl'] as const).filter((s) => config[s] !== undefined);
  for (const s of stages) {
    if (!config[s]) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `${o.file ?? '(config object)'}: stage '${s}' asked for, but the config has no '${s}' section`,
      );
    }
  }
  checkTrainerSections(config, o.file ?? '(config object)');
  const p = new CaiRun(config, o);
  await p.open();
  let aborted = false;
  for (const s of stages) {
    let ok: boolean;
    try {
      ok = s === 'sl' ? await runSl(p) : await runRl(p);
    } catch (e) {
      p.log(`the ${s} stage failed: ${describeFailure(e)}`);
      throw e;
    }
    if (!ok) {
      aborted = true;
      p.log(`interrupted in the ${s} stage; --resume continues from there`);
      break;
    }
  }
  if (!aborted) p.log('CAI run done');
  return { runDir: resolve(config.output), aborted, stages: p.done };
}
