/**
 * `npm run bench -- --suite qlora`: QLoRA against fp32 LoRA on the Qwen2.5-0.5B shape
 * (scripts/memory/make-models.py; TROUPE_QLORA_MODEL=dir for another), each side in a process of
 * its own (memory-child.ts: phases lora and qlora) so that each peak RSS is its own, rounds
 * interleaved (LoRA, QLoRA, PyTorch + PEFT LoRA, then again) so every side sees the machine in
 * the same state. QLoRA's setting (Dettmers et al. 2023 §4): adapters of rank 16 on every
 * linear layer of the blocks, gradient checkpointing; batch 1 × 256 tokens on the wasm backend.
 * PyTorch 2.13 + PEFT runs the same LoRA job (scripts/bench/torch-memory.py) where the
 * reference venv exists; it has no QLoRA side (bitsandbytes is not there).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runCase, spawnLocked } from './memory.js';
import { blasCoreType, torchPythons } from './torch-child.js';
import type { Suite } from './types.js';

export const QLORA_TARGETS = 'q,k,v,o,gate,up,down';
export const QLORA_RANK = 16;
const SCRIPT = fileURLToPath(new URL('../../scripts/bench/torch-memory.py', import.meta.url));
const DEFAULT_MODEL = '/tmp/troupe-memory/qwen2.5-0.5b';
const [B, T] = [1, 256];
const LORA_FLAGS = ['--rank', String(QLORA_RANK), '--targets', QLORA_TARGETS, '--checkpoint'];

type Row = Record<string, unknown>;

/** The PyTorch side of one job (torch-memory.py), or why it did not run. */
export function torchCase(
  python: string,
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Row {
  const r = spawnLocked([python, SCRIPT, dir, ...args], env);
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  return line ? JSON.parse(line.slice(7)) : { error: (r.stderr ?? '').slice(-2000) };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : Number.NaN;
};

/** Every timed step of a side's rounds pooled: median tokens/s and CPU s; the largest peak RSS. */
function pool(side: string, rounds: readonly Row[]): Row {
  const ok = rounds.filter((r) => !r.error);
  const wall = ok.flatMap((r) => r.wallSeconds as number[]);
  const cpu = ok.flatMap((r) => r.cpuSecondsEach as number[]);
  return {
    side,
    steps: wall.length,
    tokensPerS: (B * T) / median(wall),
    cpuSecondsPerStep: median(cpu),
    peakRssMiB: Math.max(...ok.map((r) => r.peakRssMiB as number)),
    peakRssLoadMiB: Math.max(...ok.map((r) => r.peakRssLoadMiB as number)),
    predictedMiB: ok[0]?.predictedMiB,
    nf4Bytes: ok[0]?.nf4Bytes,
    errors: rounds.filter((r) => r.error).map((r) => String(r.error).split('\n')[0]),
    rounds,
  };
}

export const qloraSuite: Suite = {
  name: 'qlora',
  description:
    'QLoRA (NF4 base) vs fp32 LoRA on the Qwen2.5-0.5B shape: peak RSS and tokens/s, PyTorch 2.13 + PEFT LoRA beside',
  async run({ quick, log }) {
    const dir = process.env.TROUPE_QLORA_MODEL ?? DEFAULT_MODEL;
    if (!existsSync(`${dir}/config.json`)) {
      log(`${dir}: missing (make it with scripts/memory/make-models.py); skipped`);
      return { rows: [], markdown: `${dir}: missing` };
    }
    const rounds = quick ? 1 : Number(process.env.TROUPE_QLORA_ROUNDS ?? 2);
    const reps = quick ? 1 : 3;
    const coretype = blasCoreType();
    const env = { ...process.env, ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}) };
    const python = torchPythons(env).find((p) => p.torch.startsWith('2.'));
    if (!python) log('PyTorch 2.x not found (../shared/tools/reference-venv.sh): its side skipped');
    const sides: Record<string, Row[]> = { lora: [], qlora: [], torch: [] };
    for (let round = 0; round < rounds; round++) {
      for (const phase of ['lora', 'qlora'] as const) {
        const row = runCase(
          dir,
          { phase, backend: 'wasm', batch: B, seq: T, reps, flags: LORA_FLAGS },
          log,
        );
        sides[phase].push(row);
      }
      if (python) {
        const args = ['lora', String(B), String(T), '--reps', String(reps), ...LORA_FLAGS];
        const row = torchCase(python.python, dir, args, env);
        log(
          row.error
            ? `PyTorch + PEFT LoRA failed: ${String(row.error).slice(-300)}`
            : `PyTorch ${row.torch} + PEFT ${row.peft} LoRA: peak RSS ${row.peakRssMiB} MiB, ` +
                `${(row.tokensPerS as number).toFixed(1)} tok/s, ${(row.cpuSeconds as number).toFixed(1)} CPU s a step`,
        );
        sides.torch.push(row);
      }
    }
    const lora = pool('Troupe fp32 LoRA (wasm)', sides.lora);
    const qlora = pool('Troupe QLoRA, NF4 base (wasm)', sides.qlora);
    const torch = python
      ? pool(`PyTorch ${python.torch} + PEFT fp32 LoRA`, sides.torch)
      : undefined;
    const rows = [lora, qlora, ...(torch ? [torch] : [])];
    const ratio = (qlora.peakRssMiB as number) / (lora.peakRssMiB as number);
    const f = (x: unknown, d = 1) =>
      typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—';
    const gib = (x: unknown) => (typeof x === 'number' ? (x / 1024).toFixed(2) : '—');
    const lines = [
      `${dir.split('/').pop()}, LoRA rank ${QLORA_RANK} on ${QLORA_TARGETS}, gradient checkpointing, ` +
        `${B} × ${T} tokens a step, 1 BLAS thread (PyTorch: 1 thread), OPENBLAS_CORETYPE ` +
        `${coretype ?? '(OpenBLAS default)'}; ${rounds} round(s) × ${reps} timed step(s) a side, interleaved.`,
      '',
      '| side | peak RSS (GiB) | peak RSS at load (GiB) | predicted (GiB) | tokens/s | CPU s / step |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.side} | ${gib(r.peakRssMiB)} | ${gib(r.peakRssLoadMiB)} | ${gib(r.predictedMiB)} | ` +
          `${f(r.tokensPerS)} | ${f(r.cpuSecondsPerStep)} |`,
      ),
      '',
      `QLoRA's peak RSS is ${(100 * ratio).toFixed(1)} % of fp32 LoRA's (target ≤ 40 %); its NF4 ` +
        `base holds ${f((qlora.nf4Bytes as number) / 2 ** 20, 0)} MiB.`,
    ];
    return { rows: [...rows, { qloraOverLoraPeakRss: ratio }], markdown: lines.join('\n') };
  },
};
