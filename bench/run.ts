/**
 * `npm run bench [-- --suite NAME] [--quick]`: runs the benchmark suites and writes each one's
 * results to bench/results/NAME.json (and prints a markdown table). Later issues add suites.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { compiledActors } from '../scripts/sources-build.js';
import { actorsSuite } from './suites/actors.js';
import { algorithmsSuite } from './suites/algorithms.js';
import { bf16GenerateSuite, bf16Suite } from './suites/bf16.js';
import { framesSuite } from './suites/frames.js';
import { matmulSuite } from './suites/matmul.js';
import { memorySuite } from './suites/memory.js';
import { methodsSuite } from './suites/memory-methods.js';
import { modelSuite } from './suites/model.js';
import { qloraSuite } from './suites/qlora.js';
import { rlSuite } from './suites/rl.js';
import { tokenizerSuite } from './suites/tokenizer.js';
import { torchSuite } from './suites/torch.js';
import type { Suite } from './suites/types.js';

const SUITES: ReadonlyMap<string, Suite> = new Map([
  [matmulSuite.name, matmulSuite],
  [modelSuite.name, modelSuite],
  [tokenizerSuite.name, tokenizerSuite],
  [framesSuite.name, framesSuite],
  [actorsSuite.name, actorsSuite],
  [rlSuite.name, rlSuite],
  [algorithmsSuite.name, algorithmsSuite],
  [torchSuite.name, torchSuite],
  [memorySuite.name, memorySuite],
  [bf16Suite.name, bf16Suite],
  [bf16GenerateSuite.name, bf16GenerateSuite],
  [qloraSuite.name, qloraSuite],
  [methodsSuite.name, methodsSuite],
]);

const { values } = parseArgs({
  options: {
    suite: { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
  },
});
const names = values.suite ?? [...SUITES.keys()];
// The actors a suite starts run the JavaScript the package ships (scripts/sources-build.ts).
const build = compiledActors();
const outDir = new URL('./results/', import.meta.url);
mkdirSync(outDir, { recursive: true });

for (const name of names) {
  const suite = SUITES.get(name);
  if (!suite) {
    process.stderr.write(`Unknown suite '${name}'. Known: ${[...SUITES.keys()].join(', ')}.\n`);
    process.exit(2);
  }
  process.stdout.write(`# ${suite.name}: ${suite.description}\n\n`);
  const result = await suite.run({
    quick: values.quick,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const file = new URL(`${suite.name}.json`, outDir);
  const machine = {
    cpu: os.cpus()[0]?.model.trim(),
    logicalCpus: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    actors: build ? 'compiled src/ (as the package ships)' : 'TypeScript sources (tsx)',
  };
  writeFileSync(
    file,
    `${JSON.stringify({ suite: suite.name, date: new Date().toISOString(), machine, ...result }, null, 2)}\n`,
  );
  process.stdout.write(`\n${result.markdown}\n\nwrote ${file.pathname}\n`);
}
