import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { applyOverride, loadConfig, splitOverrides } from '../../src/config/load.js';
import { cliArgs } from '../helpers/cli.js';

const run = promisify(execFile);
const EXAMPLES = new URL('../../examples/', import.meta.url);

describe('run configs', () => {
  it.each(readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')))(
    'examples/%s is valid',
    async (file) => {
      const path = fileURLToPath(new URL(file, EXAMPLES));
      const algorithm = (
        parse(await import('node:fs').then((fs) => fs.readFileSync(path, 'utf8'))) as {
          algorithm: string;
        }
      ).algorithm;
      const c = await loadConfig<{ train: { steps: number } }>(algorithm, { file: path });
      expect(c.train.steps).toBeGreaterThan(0);
    },
  );

  it('applies --section.key overrides as YAML values, then validates', async () => {
    const { rest, overrides } = splitOverrides(
      ['--config', 'x.yaml', '--train.steps', '70', '--optim.betas=[0.8, 0.9]', '--resume'],
      new Set(['config', 'resume']),
    );
    expect(rest).toEqual(['--config', 'x.yaml', '--resume']);
    expect(overrides).toEqual([
      ['train.steps', '70'],
      ['optim.betas', '[0.8, 0.9]'],
    ]);
    const c = await loadConfig<{
      train: { steps: number };
      optim: { betas: number[]; lr: number };
    }>('pretrain', {
      file: fileURLToPath(new URL('pretrain-moby-dick.yaml', EXAMPLES)),
      overrides,
    });
    expect(c.train.steps).toBe(70);
    expect(c.optim.betas).toEqual([0.8, 0.9]);
    expect(Object.isFrozen(c.optim)).toBe(true);
    const o: Record<string, unknown> = { train: 3 };
    expect(() => applyOverride(o, 'train.steps', '1')).toThrow(/'train' is a value, not a section/);
    expect(splitOverrides(['--output', 'runs/x'], new Set()).overrides).toEqual([
      ['output', 'runs/x'],
    ]);
    await expect(
      loadConfig('pretrain', {
        file: fileURLToPath(new URL('pretrain-moby-dick.yaml', EXAMPLES)),
        overrides: [['stpes', '3']],
      }),
    ).rejects.toThrow(/unknown key 'stpes'/);
  });

  it('names the file and field of every problem', async () => {
    const e = await loadConfig('pretrain', {
      object: {
        output: 'o',
        model: { init: { hidden: 8, layers: 1, heads: 2 } },
        data: { train: 't' },
        train: { steps: 0 },
      },
    }).catch((x: unknown) => x as Error);
    expect(String(e)).toContain('(config object): invalid config:');
    expect(String(e)).toContain('train.steps: ');
    expect(String(e)).toContain("model.tokenizer: a fresh model needs 'model.tokenizer'");
    await expect(
      loadConfig('pretrain', {
        object: {
          output: 'o',
          model: { path: 'm' },
          data: { train: 't' },
          optim: { warmupSteps: 9 },
          train: { steps: 3 },
        },
      }),
    ).rejects.toThrow(/optim.warmupSteps: warmupSteps 9 exceeds train.steps 3/);
    await expect(loadConfig('sft', { object: { algorithm: 'pretrain' } })).rejects.toThrow(
      /this config is for 'pretrain', not 'sft'/,
    );
    await expect(loadConfig('appo', { object: {} })).rejects.toThrow(
      /Unknown algorithm 'appo'. Known: pretrain, sft, rm, dpo, ppo, grpo, rloo, reinforce./,
    );
  });

  it('fills each online algorithm with its own defaults, and checks their rules', async () => {
    const base = {
      output: 'o',
      model: { path: 'm' },
      data: { train: 't' },
      train: { steps: 2, batchSize: 4 },
      reward: { sources: [{ type: 'sentiment' }] },
    };
    type Rl = import('../../src/config/schema.js').RlConfig;
    const ppo = await loadConfig<Rl>('ppo', { object: base });
    expect([ppo.rl.estimator, ppo.rollout.samplesPerPrompt, ppo.rl.kl.mode]).toEqual([
      'gae',
      1,
      'reward',
    ]);
    const grpo = await loadConfig<Rl>('grpo', { object: base });
    expect([grpo.rl.estimator, grpo.rollout.samplesPerPrompt, grpo.rl.kl]).toEqual([
      'grpo',
      4,
      { mode: 'loss', coef: 0.001, estimator: 'k3', horizon: 10000 },
    ]);
    expect(grpo.reward.sources[0]).toEqual({ type: 'sentiment', weight: 1 });
    const rloo = await loadConfig<Rl>('rloo', { object: base });
    expect(rloo.rl.estimator).toBe('rloo');
    const reinforce = await loadConfig<Rl>('reinforce', { object: base });
    expect(reinforce.rl.estimator).toBe('reinforce_plus_plus');
    await expect(
      loadConfig('grpo', { object: { ...base, rollout: { samplesPerPrompt: 1 } } }),
    ).rejects.toThrow(/rollout.samplesPerPrompt: the 'grpo' estimator compares the samples/);
    await expect(
      loadConfig('ppo', { object: { ...base, rl: { miniBatches: 5 } } }),
    ).rejects.toThrow(/rl.miniBatches: miniBatches 5 exceeds the 4 rows/);
    await expect(
      loadConfig('grpo', { object: { ...base, rl: { kl: { target: 1 } } } }),
    ).rejects.toThrow(/rl.kl.target: an adaptive KL target applies to the KL in the reward/);
    await expect(
      loadConfig('ppo', { object: { ...base, reward: { sources: [] } } }),
    ).rejects.toThrow(/reward.sources/);
    await expect(
      loadConfig('ppo', { object: { ...base, rollout: { temprature: 1 } } }),
    ).rejects.toThrow(/temprature/);
  });

  it('troupe config show prints the resolved config with defaults', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        ...cliArgs(),
        'config',
        'show',
        '--config',
        fileURLToPath(new URL('pretrain-moby-dick.yaml', EXAMPLES)),
        '--train.steps',
        '90',
      ],
      { timeout: 60_000 },
    );
    const shown = parse(stdout);
    expect(shown.train.steps).toBe(90);
    expect(shown.optim.eps).toBe(1e-8);
    expect(shown.runtime.replicas).toBe(1);
  });

  it('troupe config show prints where each actor will run, actors.* resolved, as comments', async () => {
    const show = (...args: string[]) =>
      run(process.execPath, [...cliArgs(), 'config', 'show', ...args], {
        timeout: 60_000,
      });
    const defaults = await show('--algorithm', 'grpo');
    expect(defaults.stdout).toContain(
      '# Placement (actors.*, every default resolved), one thread per line:\n' +
        '#   policy: backend auto, device default, ',
    );
    expect(defaults.stdout).toMatch(/# {3}reward: backend cpu, device default, \d+ BLAS thread/);
    const { stdout } = await show(
      '--config',
      fileURLToPath(new URL('grpo-arithmetic.yaml', EXAMPLES)),
      '--actors.reference.colocateWith',
      'policy',
      '--actors.reward.backend',
      'wasm',
      '--actors.generator.blasThreads',
      '2',
    );
    expect(parse(stdout).actors).toEqual({
      reference: { colocateWith: 'policy' },
      reward: { backend: 'wasm' },
      generator: { blasThreads: 2 },
    });
    expect(stdout).toMatch(/# {3}policy\+reference \(policy, reference\): backend \w+/);
    expect(stdout).toMatch(/# {3}generator: backend \w+, device default, 2 BLAS threads/);
    expect(stdout).toMatch(/# {3}reward: backend wasm/);
  });
});
