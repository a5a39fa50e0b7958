import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { plays } from '../../src/algorithms/launch.js';
import { PREFERENCE_LOSSES, preferenceLoss } from '../../src/algorithms/losses/index.js';
import { trainPreference } from '../../src/algorithms/preference.js';
import { ALGORITHMS, defineAlgorithm, registerAlgorithm } from '../../src/algorithms/registry.js';
import { PREFERENCE_LEARNER } from '../../src/algorithms/roles/preference-learner.js';
import { placementOf } from '../../src/algorithms/topologies.js';
import { COMMANDS, main } from '../../src/cli/main.js';
import { actorsSchema } from '../../src/config/actors.js';
import { loadConfig } from '../../src/config/load.js';
import {
  type DpoConfig,
  dataSchema,
  registryName,
  runtimeSchema,
  trainSchema,
} from '../../src/config/schema.js';
import * as tf from '../../src/kernels/tf.js';
import { useBackend } from '../helpers/backends.js';

/*
 * Adding a loss is one file plus one registry line (#16 item 4): a test-only loss file
 * (fixtures/hinge-loss.ts) registers `toy-hinge`; from then on the config accepts it, the
 * placement gives it the reference its entry asks for, and the real trainer trains with it in
 * its learner threads, which load the loss from the module its entry names.
 */

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-registry-'));

const dpoObject = (loss: string, extra: Record<string, unknown> = {}) => ({
  output: tmp(),
  model: {
    init: { family: 'gpt2', hidden: 32, layers: 1, heads: 2, maxPositions: 128 },
    tokenizer: { train: { vocabSize: 300 } },
  },
  data: { train: 'data/sentiment/preferences.jsonl', evalFraction: 0.1, maxLength: 96 },
  optim: { lr: 1e-2, schedule: 'constant' },
  train: { steps: 3, batchSize: 4, evalEvery: 0, evalBatches: 1, saveEvery: 0 },
  runtime: { backend: 'wasm' },
  dpo: { loss, beta: 0.5 },
  ...extra,
});

describe('a preference loss registered at run time', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('is refused by the config until registered, then accepted and placed with its reference', async () => {
    await expect(loadConfig('dpo', { object: dpoObject('toy-hinge') })).rejects.toThrow(
      "dpo.loss: unknown preference loss 'toy-hinge'; known: sigmoid, ipo, simpo, orpo, kto",
    );
    await import('./fixtures/hinge-loss.js');
    expect([...PREFERENCE_LOSSES.keys()]).toEqual([
      'sigmoid',
      'ipo',
      'simpo',
      'orpo',
      'kto',
      'toy-hinge',
    ]);
    const c = await loadConfig<DpoConfig>('dpo', { object: dpoObject('toy-hinge') });
    expect(c.dpo.loss).toBe('toy-hinge');
    // needsReference in its entry: the run has a reference actor, as for sigmoid (not simpo).
    expect(placementOf(c).actors.map((a) => a.name)).toEqual(['dpo', 'reference']);
    // Hand-computed: pair 1 has h = (−1 − −1.5) − (−2 − −1.5) = 1, so 1 − β·h = 0.5 at β 0.5;
    // pair 2 has h = 0 − (−5 − −1) = 4, past the margin (1 − 2 < 0: 0).
    const out = tf.tidy(() => {
      const r = preferenceLoss(
        'toy-hinge',
        {
          policyChosenLogps: tf.tensor1d([-1, -1]),
          policyRejectedLogps: tf.tensor1d([-2, -5]),
          refChosenLogps: tf.tensor1d([-1.5, -1]),
          refRejectedLogps: tf.tensor1d([-1.5, -1]),
        },
        { beta: 0.5 },
      );
      return { loss: r.loss.dataSync()[0], active: r.metrics['toy/active'].dataSync()[0] };
    });
    expect(out.loss).toBeCloseTo((0.5 + 0) / 2, 6);
    expect(out.active).toBe(0.5);
  });

  it('trains through the real trainer, in learner threads that load it from its module', async () => {
    await import('./fixtures/hinge-loss.js');
    const c = await loadConfig<DpoConfig>('dpo', { object: dpoObject('toy-hinge') });
    const rows: { split: string; step: number; v: Record<string, number> }[] = [];
    const r = await trainPreference(c, {
      events: { onMetrics: (split, step, v) => rows.push({ split, step, v: { ...v } }) },
    });
    expect(r.steps).toBe(3);
    // At step 0 the policy is the reference: h = 0 for every pair, so the hinge is exactly 1
    // (DPO's sigmoid loss would be log 2) and every pair is inside the margin.
    const first = rows.find((x) => x.split === 'eval')!;
    expect(first.step).toBe(0);
    expect(first.v['loss']).toBeCloseTo(1, 5);
    expect(first.v['toy/active']).toBe(1);
    const train = rows.filter((x) => x.split === 'train');
    expect(train.map((x) => x.step)).toEqual([1, 2, 3]);
    expect(train[0].v['loss']).toBeCloseTo(1, 5);
    for (const x of train) expect(x.v['toy/active']).toBeGreaterThan(0);
    expect(readFileSync(join(r.runDir, 'config.yaml'), 'utf8')).toContain('loss: toy-hinge');
  }, 180_000);
});

/** `main(args)` in this process, with what it wrote to stdout and stderr. */
async function troupe(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => out.push(String(c)) > 0);
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => err.push(String(c)) > 0);
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/*
 * Adding an algorithm is one file plus one registry line: here the "file" is the test itself. A
 * toy algorithm, `toy-count`, counts its data rows (its trainer writes the count and the config
 * it was given); it has one actor, a preference learner, and a `toy.loss` field naming a
 * preference loss. Registered after the CLI and the config loader were imported, it is a command,
 * a config and a placement from then on.
 */
describe('an algorithm registered at run time', () => {
  afterEach(() => vi.restoreAllMocks());

  const ACTORS = { learner: { trainable: true, replicasFromRuntime: true } } as const;
  const schema = z
    .object({
      algorithm: z.literal('toy-count'),
      seed: z.number().int().min(0).default(0),
      output: z.string(),
      data: dataSchema,
      runtime: runtimeSchema.prefault({}),
      actors: actorsSchema('toy-count', ACTORS),
      train: trainSchema,
      toy: z
        .object({ loss: registryName(PREFERENCE_LOSSES, 'preference loss').default('sigmoid') })
        .strict()
        .prefault({}),
    })
    .strict();
  type ToyConfig = z.infer<typeof schema>;
  const ran: ToyConfig[] = [];

  const toy = defineAlgorithm<ToyConfig>({
    summary: 'count the training rows (a test-only algorithm)',
    schema,
    actors: ACTORS,
    topology: { learner: plays(PREFERENCE_LEARNER, { args: () => ({}) as never }) },
    train: async (c) => {
      ran.push(c);
      const rows = readFileSync(c.data.train, 'utf8').trim().split('\n').length;
      mkdirSync(c.output, { recursive: true });
      writeFileSync(join(c.output, 'count.json'), JSON.stringify({ rows, loss: c.toy.loss }));
      return { runDir: c.output, steps: c.train.steps, aborted: false };
    },
  });

  it('is listed, configured, placed and run by the CLI, with an error for a bad field', async () => {
    const before = COMMANDS.size;
    expect(ALGORITHMS.has('toy-count')).toBe(false);
    expect((await troupe('toy-count', '--help')).code).toBe(2);
    registerAlgorithm('toy-count', toy);
    expect(COMMANDS.size).toBe(before + 1);
    // troupe --help lists it after the built-in algorithms, with its summary.
    const help = (await troupe('--help')).stdout;
    expect(help).toContain('  toy-count  count the training rows (a test-only algorithm)');
    expect(help.indexOf('  reinforce ')).toBeLessThan(help.indexOf('  toy-count '));
    expect(help.indexOf('  toy-count ')).toBeLessThan(help.indexOf('  config '));
    // Its --help lists its fields, read from its schema.
    const own = await troupe('toy-count', '--help');
    expect(own.code).toBe(0);
    expect(own.stdout).toMatch(/^usage: troupe toy-count \[--config run\.yaml\] \[--resume\]/);
    expect(own.stdout).toMatch(/toy\s+loss/);
    expect((await troupe('config', 'show', '--help')).stdout).toContain(
      '--algorithm pretrain|sft|rm|dpo|ppo|grpo|rloo|reinforce|toy-count',
    );
    // config show: its defaults and where its one actor runs.
    const shown = await troupe('config', 'show', '--algorithm', 'toy-count');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('algorithm: toy-count');
    expect(shown.stdout).toContain('loss: sigmoid');
    expect(shown.stdout).toMatch(/#\s+learner: backend auto, device default/);
    // Run: the trainer gets the config its schema validated, defaults filled in.
    const dir = tmp();
    const train = join(dir, 'train.jsonl');
    writeFileSync(train, '{"text":"a"}\n{"text":"b"}\n{"text":"c"}\n');
    const output = join(dir, 'run');
    const r = await troupe(
      'toy-count',
      '--output',
      output,
      '--data.train',
      train,
      '--train.steps',
      '2',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`done: 2 steps; run directory ${output}`);
    expect(JSON.parse(readFileSync(join(output, 'count.json'), 'utf8'))).toEqual({
      rows: 3,
      loss: 'sigmoid',
    });
    expect(ran.at(-1)).toMatchObject({ algorithm: 'toy-count', runtime: { backend: 'auto' } });
    // Its own fields are checked by its schema, naming the field.
    const bad = await troupe(
      'toy-count',
      '--output',
      output,
      '--data.train',
      train,
      '--train.steps',
      '2',
      '--toy.loss',
      'nope',
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("toy.loss: unknown preference loss 'nope'; known: sigmoid");
    const placed = placementOf(
      await loadConfig<ToyConfig>('toy-count', {
        object: { output, data: { train }, train: { steps: 1 }, runtime: { replicas: 2 } },
      }),
    );
    expect(placed.actors.map((a) => [a.name, a.replicas])).toEqual([['learner', 2]]);
  });

  it('refuses a taken name, a malformed one, and a topology that names other actors', () => {
    expect(() => registerAlgorithm('dpo', toy)).toThrow("Algorithm 'dpo' is already registered");
    expect(() => registerAlgorithm('Toy Count', toy)).toThrow('lower-case letters');
    expect(() =>
      registerAlgorithm('toy-two', { ...toy, actors: { policy: ACTORS.learner } }),
    ).toThrow('actors only: policy; topology only: learner');
  });
});
