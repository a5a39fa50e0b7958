import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { trainPreference } from '../algorithms/preference.js';
import { trainRl } from '../algorithms/rl.js';
import type { RlConfig, RmConfig } from '../config/schema.js';
import { loadExamples } from '../data/datasets/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { trainerConfig } from './config.js';
import { promptTurns, renderText } from './dialogue.js';
import { Labeller } from './feedback.js';
import { rlStage, rmRows } from './rl.js';
import { type CaiRun, jsonl, promptItems } from './run.js';
import type { PromptItem } from './sl.js';
import { runDataStage } from './stage.js';

/*
 * RL-CAI in a run: response pairs of the SL-CAI model labelled by the feedback model (rl-data/,
 * resumable by batch), the reward-model rows with soft labels and PPO's prompts, then `troupe
 * rm` on them (rm/) and `troupe ppo` from the SL-CAI model against that reward model (ppo/).
 */

export async function runRl(run: CaiRun): Promise<boolean> {
  const rl = run.c.rl!;
  const file = run.o.file ?? '(config object)';
  const dataDir = join(run.dir, 'rl-data');
  const base = run.slModel();
  if (!run.done['rl-data']) {
    const t0 = performance.now();
    const prompts = await promptItems(rl.prompts, rl.columns, rl.limit);
    const sampler = await run.model(
      rl.sampler ?? base,
      rl.sampler ? 'rl.sampler' : 'the SL-CAI model',
    );
    const feedback = await run.model(rl.feedback, 'rl.feedback');
    try {
      run.log(
        `stage rl-data: ${prompts.length} prompts; pairs by ${sampler.describe}; labels by ${feedback.describe}, ${rl.principles} principles each${rl.chainOfThought ? ', chain of thought' : ''}`,
      );
      const labeller = new Labeller(
        feedback,
        run.constitution,
        {
          seed: run.c.seed,
          principles: rl.principles,
          chainOfThought: rl.chainOfThought,
          clamp: rl.clamp,
          votes: rl.votes,
          shots: rl.fewShot,
          reasoningTokens: rl.reasoningTokens,
          temperature: 1,
          shuffleOrder: rl.shuffleOrder,
        },
        (m) => run.log(m),
      );
      const stage = rlStage(
        sampler,
        labeller,
        run.constitution,
        prompts,
        {
          seed: run.c.seed,
          maxTokens: rl.generation.maxNewTokens,
          temperature: rl.generation.temperature,
          topP: rl.generation.topP,
        },
        run.c.batchSize,
      );
      const r = await runDataStage(dataDir, run.stageConfig('rl-data', base), stage, {
        resume: run.resumeOf('rl-data'),
        signal: run.o.signal,
        events: run.o.events,
      });
      if (r.aborted) return false;
      const turnsOf = (x: { prompt: PromptItem['prompt'] }) => promptTurns(x.prompt);
      const rows = rmRows(run.constitution, run.c.dialogue, r.records, turnsOf);
      const extra = rl.extraPairs ? await extraPairs(rl.extraPairs) : '';
      await writeFileAtomic(join(dataDir, 'rm-pairs.jsonl'), jsonl(rows) + extra);
      const ppoPrompts = prompts.map((p) => ({
        prompt:
          run.c.dialogue === 'chat'
            ? p.turns
            : renderText(run.constitution.dialogue, p.turns, true),
      }));
      await writeFileAtomic(join(dataDir, 'prompts.jsonl'), jsonl(ppoPrompts));
      const js = r.records.flatMap((x) => x.judgements ?? []);
      const voted = js.filter((j) => j.source === 'votes').length;
      await run.finish('rl-data', {
        runDir: dataDir,
        pairs: rows.length,
        skippedIdentical: r.records.length - rows.length,
        judgements: js.length,
        labelSource: voted === 0 ? 'logprobs' : voted === js.length ? 'votes' : 'mixed',
        votedJudgements: voted,
        rmPairs: join(dataDir, 'rm-pairs.jsonl'),
        seconds: (performance.now() - t0) / 1000,
      });
    } finally {
      sampler.dispose();
      feedback.dispose();
    }
  }
  const rmSection = rl.rm as { model?: { path?: string } };
  const rm = await run.train('rm', (resume) =>
    trainPreference(
      trainerConfig<RmConfig>(
        'rm',
        rl.rm,
        {
          output: join(run.dir, 'rm'),
          seed: run.c.seed,
          ...(rmSection.model?.path ? {} : { model: { path: base } }),
          data: { train: join(dataDir, 'rm-pairs.jsonl'), format: 'preference' },
        },
        { file, field: 'rl.rm' },
      ),
      run.trainOpts(resume),
    ),
  );
  if (!rm) return false;
  const ppo = await run.train('ppo', (resume) =>
    trainRl(
      trainerConfig<RlConfig>(
        'ppo',
        rl.ppo,
        {
          output: join(run.dir, 'ppo'),
          seed: run.c.seed,
          model: { path: base },
          data: { train: join(dataDir, 'prompts.jsonl') },
          reward: { sources: [{ type: 'model', name: 'cai-rm', path: rm['checkpoint'] }] },
        },
        { file, field: 'rl.ppo' },
      ),
      run.trainOpts(resume),
    ),
  );
  return ppo !== undefined;
}

/** Human-labelled pairs mixed into the reward model's data: checked, then copied as they are. */
async function extraPairs(file: string): Promise<string> {
  await loadExamples(file, { format: 'preference' }); // every row checked (file:line on an error)
  const body = await readFile(file, 'utf8');
  return body.endsWith('\n') || body === '' ? body : `${body}\n`;
}
