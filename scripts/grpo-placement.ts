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
import { phaseRows, writeJobData } from '../bench/suites/rl.js';
import { grpoConfig, iterationsOf } from '../bench/suites/rl-grpo.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

const actors = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
const timed = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'troupe-grpo-placement-'));
try {
  await writeJobData(dir);
  const its = (await iterationsOf(await grpoConfig(dir, timed + 1, actors))).slice(1);
  const steps = its.map((m) => m['timing/step_s']);
  say(`iterations (s): ${steps.map((x) => x.toFixed(3)).join(' ')}`);
  for (const k of ['generate', 'reference', 'update']) {
    const xs = its.map((m) => m[`timing/${k}_s`] ?? 0);
    say(`  ${k} (s): ${xs.map((x) => x.toFixed(3)).join(' ')}`);
  }
  for (const r of phaseRows('GRPO', JSON.stringify(actors), its)) {
    say(`${r.figure.padEnd(70)} ${r.value.toFixed(3)} ${r.unit}  ${r.note}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
