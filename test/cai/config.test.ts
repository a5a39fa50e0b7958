import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainPreference } from '../../src/algorithms/preference.js';
import { checkTrainerSections, loadCaiConfig, trainerConfig } from '../../src/cai/config.js';
import { runCai } from '../../src/cai/pipeline.js';
import { main } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/load.js';
import type { RmConfig } from '../../src/config/schema.js';
import { hasCode } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'troupe-cai-config-'));

const BASE = {
  output: join(dir, 'run'),
  constitution: 'data/cai/constitution.yaml',
  policy: 'runs/policy',
  rl: { prompts: 'data/cai/red-team.jsonl', feedback: 'runs/policy' },
};

async function refused(p: Promise<unknown>): Promise<string> {
  const e = await p.catch((x: unknown) => x);
  expect(hasCode(e, 'BAD_ARGUMENT') || hasCode(e, 'BAD_DATA')).toBe(true);
  return (e as Error).message;
}

describe('CAI config', () => {
  it('fills defaults; a feedback endpoint is checked field by field', async () => {
    const c = await loadCaiConfig({
      object: {
        ...BASE,
        rl: { ...BASE.rl, feedback: { endpoint: { url: 'http://127.0.0.1:8080/v1' } } },
      },
      overrides: [['rl.principles', '2']],
    });
    expect(c.rl!.principles).toBe(2);
    expect(c.rl!.clamp).toEqual([0.4, 0.6]);
    expect(c.rl!.feedback).toEqual({
      endpoint: expect.objectContaining({ api: 'chat', topLogprobs: 5, retries: 2 }),
    });
    expect(c.dialogue).toBe('text');
  });

  it('examples/cai/*.yaml are valid, trainer sections included', async () => {
    const files = readdirSync('examples/cai').filter((f) => f.endsWith('.yaml'));
    expect(files).toContain('tiny.yaml');
    for (const f of files) {
      const file = join('examples/cai', f);
      const c = await loadCaiConfig({ file });
      expect(() => checkTrainerSections(c, file)).not.toThrow();
    }
  });

  it('refuses what it cannot run, naming the field', async () => {
    const file = join(dir, 'cai.yaml');
    writeFileSync(
      file,
      'output: x\nconstitution: c.yaml\npolicy: p\nrl: {prompts: p.jsonl, feedback: p, principle: 3}\n',
    );
    expect(await refused(loadCaiConfig({ file }))).toMatch(
      new RegExp(`${file}: invalid config:\\n  rl: unknown key 'principle'`),
    );
    expect(
      await refused(
        loadCaiConfig({
          object: { ...BASE, rl: { ...BASE.rl, feedback: { endpoint: { url: 'ftp://x' } } } },
        }),
      ),
    ).toContain('rl.feedback');
    expect(await refused(loadCaiConfig({ object: { ...BASE, rl: undefined } }))).toContain(
      'a CAI run needs at least one stage',
    );
  });

  it("a trainer section is that trainer's config, less what the pipeline fills in", () => {
    const where = { file: 'cai.yaml', field: 'rl.ppo' };
    const fill = {
      output: 'o',
      model: { path: 'm' },
      data: { train: 't.jsonl' },
      reward: { sources: [{ type: 'length' }] },
    };
    const c = trainerConfig<{ train: { steps: number }; rl: { kl: { coef: number } } }>(
      'ppo',
      { train: { steps: 3 }, rl: { kl: { coef: 0.1 } } },
      fill,
      where,
    );
    expect(c.train.steps).toBe(3);
    expect(c.rl.kl.coef).toBe(0.1);
    expect(() => trainerConfig('ppo', { reward: { sources: [] } }, fill, where)).toThrow(
      'cai.yaml: rl.ppo.reward: set by the CAI pipeline; remove it from rl.ppo',
    );
    expect(() => trainerConfig('ppo', { train: { steps: 0 } }, fill, where)).toThrow(
      /cai\.yaml: invalid config:\n {2}rl\.ppo\.train\.steps: /,
    );
  });

  it('a bad trainer section fails before the run starts, naming its full path', async () => {
    const c = await loadCaiConfig({
      object: {
        ...BASE,
        rl: { ...BASE.rl, rm: { train: { steps: 2 } }, ppo: { train: { stepz: 3 } } },
      },
    });
    const msg = await refused(runCai(c));
    expect(msg).toContain("rl.ppo.train: unknown key 'stepz'");
    expect(existsSync(BASE.output)).toBe(false);
  });

  it('troupe cai refuses an unknown stage', async () => {
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      errors.push(s);
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await main(['cai', 'rlhf', '--config', join(dir, 'none.yaml')])).toBe(1);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('')).toContain("troupe cai: unknown stage 'rlhf'. Known: sl, rl, all.");
  });
});

describe('reward-model pairs with soft labels', () => {
  let pairs: string;
  beforeAll(() => {
    pairs = join(dir, 'pairs.jsonl');
    writeFileSync(
      pairs,
      [
        { prompt: 'Q:', chosen: ' a', rejected: ' b', chosen_prob: 0.7 },
        { prompt: 'Q:', chosen: ' c', rejected: ' d', chosen_prob: 1.5 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
  });

  it('a chosen_prob outside [0, 1] is refused naming the file, line and column', async () => {
    const config = await loadConfig<RmConfig>('rm', {
      object: {
        output: join(dir, 'rm'),
        model: {
          init: { family: 'gpt2', hidden: 16, layers: 1, heads: 2, maxPositions: 32 },
          tokenizer: { train: { vocabSize: 260, minFrequency: 1 } },
        },
        data: { train: pairs, evalFraction: 0, maxLength: 32 },
        train: { steps: 1, batchSize: 2, evalEvery: 0, saveEvery: 0 },
        runtime: { backend: 'cpu' },
      },
    });
    const msg = await refused(trainPreference(config));
    expect(msg).toContain(`${pairs}:2`);
    expect(msg).toContain("column 'chosen_prob' must be a probability in [0, 1]");
    expect(msg).toContain('got 1.5');
  });
});
