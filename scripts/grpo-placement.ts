/**
 * One GRPO placement of the RL bench job (bench/suites/rl-grpo.ts), per phase:
 *
 *   npx tsx scripts/grpo-placement.ts '{"policy":{"replicas":2}}' [iterations]
 *
 * prints each phase's median over the iterations after the first (a warm-up). For trying a
 * placement before it joins `--suite rl`'s list.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grpoConfig, iterationsOf } from '../bench/suites/rl-grpo.js';
import { phaseRows, writeJobData } from '../bench/suites/rl.js';

const actors = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const timed = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'troupe-grpo-placement-'));
try {
  await writeJobData(dir);
  const its = (await iterationsOf(await grpoConfig(dir, timed + 1, actors))).slice(1);
  for (const r of phaseRows('GRPO', JSON.stringify(actors), its)) {
    console.log(`${r.figure.padEnd(70)} ${r.value.toFixed(3)} ${r.unit}  ${r.note}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
