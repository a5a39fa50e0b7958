/**
 * One placement of one job of the RL bench (bench/suites/rl.ts: PPO of the small model, GRPO of
 * the tiny GPT-2), per phase:
 *
 *   npx tsx scripts/rl-placement.ts grpo '{"policy":{"replicas":2}}' [iterations]
 *   npx tsx scripts/rl-placement.ts ppo '{"generator":{"colocateWith":"policy"}}' [iterations]
 *
 * prints each phase's median over the iterations after the first (a warm-up). For trying a
 * placement before it joins `--suite rl`'s list.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { phaseRows, ppoConfig, writeJobData } from '../bench/suites/rl.js';
import { grpoConfig, iterationsOf } from '../bench/suites/rl-grpo.js';
import { compiledActors } from './sources-build.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

const job = process.argv[2];
if (job !== 'grpo' && job !== 'ppo') {
  process.stderr.write("usage: rl-placement.ts grpo|ppo '<actors JSON>' [iterations]\n");
  process.exit(2);
}
const actors = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
const timed = Number(process.argv[4] ?? 5);
compiledActors();
const dir = mkdtempSync(join(tmpdir(), 'troupe-rl-placement-'));
try {
  await writeJobData(dir);
  const make = job === 'grpo' ? grpoConfig : ppoConfig;
  const its = (await iterationsOf(await make(dir, timed + 1, actors))).slice(1);
  const steps = its.map((m) => m['timing/step_s']);
  say(`iterations (s): ${steps.map((x) => x.toFixed(3)).join(' ')}`);
  for (const k of ['generate', 'logprobs', 'reference', 'critic', 'update']) {
    const xs = its.map((m) => m[`timing/${k}_s`] ?? 0);
    if (xs.some((x) => x > 0)) say(`  ${k} (s): ${xs.map((x) => x.toFixed(3)).join(' ')}`);
  }
  for (const r of phaseRows(job.toUpperCase(), JSON.stringify(actors), its)) {
    say(`${r.figure.padEnd(70)} ${r.value.toFixed(3)} ${r.unit}  ${r.note}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
