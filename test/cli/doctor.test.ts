import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { formatDoctor, runDoctor } from '../../src/cli/doctor.js';
import { cliArgs } from '../helpers/cli.js';

const run = promisify(execFile);
const troupe = (...args: string[]) =>
  run(process.execPath, [...cliArgs(), ...args], { timeout: 60_000 });

describe('troupe doctor', () => {
  it('reports every backend, the auto pick, threads and a matmul figure per available backend', async () => {
    const r = await runDoctor();
    expect(r.backends.map((b) => b.backend)).toEqual([
      'tensorflow-gpu',
      'tensorflow',
      'wasm',
      'webgpu',
      'cpu',
    ]);
    for (const b of r.backends) {
      expect(b.reason.length).toBeGreaterThan(0);
      expect(b.install === null).toBe(b.available);
    }
    expect(r.auto.backend).toBe(
      r.backends.find((b) => b.available && b.backend !== 'webgpu')!.backend,
    );
    expect(r.threads.logicalCpus).toBeGreaterThan(0);
    expect(r.matmul.map((m) => m.backend)).toEqual(
      r.backends.filter((b) => b.available).map((b) => b.backend),
    );
    for (const m of r.matmul) expect(m.gflops).toBeGreaterThan(0);
    const text = formatDoctor(r);
    expect(text).toContain(`auto picks: ${r.auto.backend} on ${r.auto.device}`);
    expect(text).toContain('fp32 matmul');
  });

  it('prints JSON with --json and fails on an unknown command or flag', async () => {
    const { stdout } = await troupe('doctor', '--json', '--no-measure');
    const parsed = JSON.parse(stdout);
    expect(parsed.auto.backend).toBeTypeOf('string');
    expect(parsed.matmul).toEqual([]);
    // The native kernels are there with their BLAS, or absent with the reason.
    expect(parsed.native.available ? parsed.native.blas : parsed.native.reason).toBeTypeOf(
      'string',
    );
    await expect(troupe('doctr')).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        "unknown command 'doctr'. Known: demo, pretrain, sft, rm, dpo, ppo, grpo, rloo, reinforce, config, generate, chat, merge, doctor, logprobs, tokenizer",
      ),
    });
    await expect(troupe('doctor', '--jsn')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining("Unknown option '--jsn'"),
    });
  });
});
