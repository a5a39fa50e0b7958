import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { COMMANDS, main } from '../../src/cli/main.js';
import { usageOf } from '../../src/cli/options.js';
import { TOKENIZER_COMMANDS, trainHelp } from '../../src/cli/tokenizer.js';
import { ALGORITHMS, terminalEvents } from '../../src/cli/train.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { loadConfig } from '../../src/config/load.js';
import { cliArgs } from '../helpers/cli.js';

const VERSION = JSON.parse(readFileSync('package.json', 'utf8')).version as string;

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

afterEach(() => vi.restoreAllMocks());

/** The `--flag` names of a usage line. */
const flagsOf = (usage: string) =>
  [...usage.matchAll(/--([a-z][\w.-]*)/g)].map((m) => m[1]).filter((f) => !f.includes('.'));

describe('troupe <command> --help', () => {
  it('every command prints its usage and options with --help and -h, and exits 0', async () => {
    expect(COMMANDS.size).toBeGreaterThanOrEqual(16);
    for (const [name, command] of COMMANDS) {
      for (const flag of ['--help', '-h']) {
        const r = await troupe(name, flag);
        expect(r.code, `${name} ${flag}`).toBe(0);
        expect(r.stderr, `${name} ${flag}`).toBe('');
        expect(r.stdout, name).toMatch(/^usage:/);
        // The usage line `troupe --help` shows is the one --help prints, and every flag in it
        // is explained there.
        for (const line of command.usage.split('\n')) expect(r.stdout).toContain(line.trim());
        for (const f of flagsOf(command.usage))
          expect(r.stdout, `${name}: --${f}`).toContain(`--${f}`);
      }
    }
  });

  it('every flag a usage line shows is one the parser accepts (they come from one table)', async () => {
    // Values that fail fast after parsing: a model, a config or a tokenizer that is not there.
    const value = (f: string) =>
      ({ steps: '1', 'batch-size': '1', 'max-new-tokens': '1', algorithm: 'grpo' })[f] ??
      '/nonexistent';
    const argsOf = (usage: string) =>
      flagsOf(usage).flatMap((f) =>
        new RegExp(`--${f} [^\\s\\]]`).test(usage) ? [`--${f}`, value(f)] : [`--${f}`],
      );
    const runs: string[][] = [
      ...[...COMMANDS]
        .filter(([name]) => name !== 'tokenizer')
        .map(([name, c]) => [name, ...argsOf(c.usage)]),
      ...[...TOKENIZER_COMMANDS].map(([sub, spec]) => ['tokenizer', sub, ...argsOf(usageOf(spec))]),
    ];
    expect(runs.length).toBe(COMMANDS.size + TOKENIZER_COMMANDS.size - 1);
    for (const args of runs) {
      const r = await troupe(...args);
      expect(r.stderr, args.join(' ')).not.toMatch(/Unknown option|needs a value|is required/);
    }
  });

  it('a sub-command prints its own help; tokenizer alone lists its sub-commands', async () => {
    expect((await troupe('tokenizer', 'train', '--help')).stdout).toBe(trainHelp());
    const all = await troupe('tokenizer', '-h');
    for (const sub of TOKENIZER_COMMANDS.keys())
      expect(all.stdout).toContain(`troupe tokenizer ${sub} `);
    const show = await troupe('config', 'show', '--help');
    expect(show.stdout).toContain(`--algorithm ${ALGORITHMS.join('|')}`);
  });

  it('training commands list their config fields from the schema, and what Ctrl-C does', async () => {
    const r = await troupe('grpo', '--help');
    expect(r.stdout).toMatch(/reward\s+sources \(required\), poolThreads, timeoutMs/);
    expect(r.stdout).toMatch(/train\s+steps \(required\), batchSize/);
    expect(r.stdout).toContain('init.hidden (required with model.init)');
    expect(r.stdout).toContain(
      'Ctrl-C finishes the step under way, saves a checkpoint and exits 130',
    );
  });

  it('an unknown option names itself and the usage', async () => {
    const r = await troupe('generate', '--modle', 'x');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Unknown option '--modle'");
    expect(r.stderr).toContain('Usage: troupe generate --model DIR|RUN --prompt TEXT');
    const missing = await troupe('merge', '--model', 'x');
    expect(missing.stderr).toContain('--output is required. Usage: troupe merge');
  });
});

describe('troupe --version and troupe --help', () => {
  it("prints package.json's version", async () => {
    for (const flag of ['--version', '-v']) {
      const r = await troupe(flag);
      expect(r).toMatchObject({ code: 0, stdout: `troupe ${VERSION}\n` });
    }
    const h = await troupe('--help');
    for (const name of COMMANDS.keys()) expect(h.stdout).toContain(`  ${name} `);
  });

  it('as a program: --help and --version exit 0, an unknown command 2', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [...cliArgs(), ...args], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    const help = run('pretrain', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: troupe pretrain \[--config run\.yaml\] \[--resume\]/);
    expect(run('demo', '-h').status).toBe(0);
    expect(run('--version').stdout).toBe(`troupe ${VERSION}\n`);
    expect(run('nope').status).toBe(2);
  });
});

describe('troupe config show', () => {
  it('--algorithm alone prints the defaults, and what a config must add to them', async () => {
    for (const algorithm of ALGORITHMS) {
      const r = await troupe('config', 'show', '--algorithm', algorithm);
      expect(r.code, algorithm).toBe(0);
      const shown = parse(r.stdout) as Record<string, Record<string, unknown>>;
      expect(shown['algorithm']).toBe(algorithm);
      expect(r.stdout).toContain('output: null # required');
      expect(r.stdout).toMatch(/#\s+model\.path: set exactly one of 'model\.path'/);
      // The defaults plus the required fields are a config the loader accepts, and it resolves
      // to exactly what was shown.
      const filled = structuredClone(shown);
      filled['output'] = '/tmp/x' as never;
      filled['model'] = { ...filled['model'], path: 'some/model' };
      filled['data'] = { ...filled['data'], train: 'train.jsonl' };
      filled['train'] = { ...filled['train'], steps: 10 };
      if ('reward' in filled)
        filled['reward'] = { ...filled['reward'], sources: [{ type: 'sentiment', weight: 1 }] };
      const loaded = await loadConfig(algorithm, { object: filled });
      expect(loaded).toEqual(filled);
      expect(defaultConfig(algorithm).required.length).toBeGreaterThanOrEqual(4);
    }
  });

  it('grpo: the RL defaults, the reward timeout among them', async () => {
    const shown = parse((await troupe('config', 'show', '--algorithm', 'grpo')).stdout);
    expect(shown.rollout.samplesPerPrompt).toBe(4);
    expect(shown.rl.kl).toMatchObject({ mode: 'loss', coef: 0.001, estimator: 'k3' });
    expect(shown.reward.timeoutMs).toBe(600_000);
    // Optional sections stay off: a LoRA default would turn LoRA on for whoever copies it.
    expect(shown.model.lora).toBeUndefined();
  });

  it('an unknown sub-command lists the known ones', async () => {
    const r = await troupe('config', 'print');
    expect(r.stderr).toContain("Unknown config command 'print'. Known: show.");
  });
});

describe('the terminal view of a run', () => {
  it("shows actor warnings (restarts among them) and errors, and the trainer's notes", () => {
    const lines: string[] = [];
    const stream = { write: (c: string) => lines.push(c) > 0, isTTY: false };
    const { events } = terminalEvents(stream as unknown as NodeJS.WriteStream);
    const log = (actor: string, level: 'info' | 'warn' | 'error', message: string) =>
      events.onLog({ actor, level, message });
    log('reward', 'warn', "actor 'reward' restarted (restart 1) after: thread exited with code 1");
    log('policy', 'error', 'out of memory');
    log('policy', 'info', 'RL policy ready: 12 trainable tensors');
    log('trainer', 'info', 'model.path runs/sft: its best checkpoint');
    expect(lines).toEqual([
      "[reward] warn: actor 'reward' restarted (restart 1) after: thread exited with code 1\n",
      '[policy] error: out of memory\n',
      'model.path runs/sft: its best checkpoint\n',
    ]);
  });
});
