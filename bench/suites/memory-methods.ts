/**
 * `npm run bench -- --suite methods`: model size × method → peak RSS and tokens/s, Troupe beside
 * PyTorch 2.13 (+ PEFT), the README's table. For each model directory (scripts/memory/make-models.py:
 * Qwen2.5-0.5B and TinyLlama-1.1B shapes; TROUPE_METHODS_MODELS=dir1,dir2 for others) one
 * training step of 1 × 256 tokens, gradient checkpointing on for every row (it is what fits the
 * 1.1 B model; both sides the same), each in a process of its own (memory-child.ts,
 * scripts/bench/torch-memory.py):
 *   full fp32 (AdamW), full bf16 (precision: bf16 / autocast; fp32 master weights and moments),
 *   LoRA (rank 16 on every block projection, fp32), QLoRA (the same adapters on an NF4 base;
 *   no PyTorch side: bitsandbytes is not in the reference venv).
 * Troupe on the cpu backend (host memory, native kernels; the only backend that holds these past
 * the wasm32 heap), 1 BLAS thread; PyTorch 1 thread (MKL for fp32 GEMM, oneDNN for bf16); both
 * under the same OPENBLAS_CORETYPE. One warm-up step and TROUPE_METHODS_REPS timed ones (default
 * 1: a 1.1 B step is minutes here) a row.
 */
import { existsSync } from 'node:fs';
import { type Case, runCase } from './memory.js';
import { QLORA_RANK, QLORA_TARGETS, torchCase } from './qlora.js';
import { blasCoreType, torchPythons } from './torch-child.js';
import type { Suite } from './types.js';

const DEFAULT_MODELS = ['/tmp/troupe-memory/qwen2.5-0.5b', '/tmp/troupe-memory/llama-1.1b'];
const [B, T] = [1, 256];
const LORA = ['--rank', String(QLORA_RANK), '--targets', QLORA_TARGETS];

interface Method {
  readonly name: string;
  readonly phase: Case['phase'];
  readonly troupe: readonly string[];
  /** torch-memory.py's phase and flags; absent: no PyTorch side. */
  readonly torch?: readonly string[];
}

const METHODS: readonly Method[] = [
  { name: 'full fp32', phase: 'full', troupe: [], torch: ['full'] },
  {
    name: 'full bf16',
    phase: 'full',
    troupe: ['--precision', 'bf16'],
    torch: ['full', '--bf16'],
  },
  { name: `LoRA r${QLORA_RANK} fp32`, phase: 'lora', troupe: LORA, torch: ['lora', ...LORA] },
  { name: `QLoRA r${QLORA_RANK} (NF4)`, phase: 'qlora', troupe: LORA },
];

type Row = Record<string, unknown>;
const gib = (mib: unknown) => (typeof mib === 'number' ? (mib / 1024).toFixed(2) : '—');
const num = (x: unknown, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '—');
const cell = (r: Row | undefined) =>
  !r
    ? '— | —'
    : r.error
      ? `${typeof r.code === 'string' ? r.code : 'failed'} | —`
      : `${gib(r.peakRssMiB)} | ${num(r.tokensPerS)}`;

export const methodsSuite: Suite = {
  name: 'methods',
  description:
    'model size × method (full fp32, full bf16, LoRA, QLoRA): peak RSS and tokens/s of a training step, Troupe (cpu backend) beside PyTorch 2.13 + PEFT',
  async run({ quick, log }) {
    const models = (process.env.TROUPE_METHODS_MODELS?.split(',') ?? DEFAULT_MODELS).filter((d) => {
      const ok = existsSync(`${d}/config.json`);
      if (!ok) log(`${d}: missing (scripts/memory/make-models.py --models ...); skipped`);
      return ok;
    });
    const reps = Number(process.env.TROUPE_METHODS_REPS ?? 1);
    const coretype = blasCoreType();
    const env = { ...process.env, ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}) };
    const python = torchPythons(env).find((p) => p.torch.startsWith('2.'));
    if (!python) log('PyTorch 2.x not found (../shared/tools/reference-venv.sh): its side skipped');
    // TROUPE_METHODS="full fp32,full bf16": a subset by name
    const only = process.env.TROUPE_METHODS?.split(',');
    const methods = (quick ? METHODS.slice(2) : METHODS).filter(
      (m) => !only || only.includes(m.name),
    );
    const rows: Row[] = [];
    for (const dir of models) {
      for (const m of methods) {
        const flags = [...m.troupe, '--checkpoint'];
        const troupe = runCase(
          dir,
          { phase: m.phase, backend: 'cpu', batch: B, seq: T, reps, flags },
          log,
        );
        rows.push({
          ...troupe,
          job: troupe.method,
          model: dir.split('/').pop(),
          method: m.name,
          side: 'troupe',
        });
        if (!python || !m.torch) continue;
        const args = [...m.torch, '--checkpoint', '--reps', String(reps), '--threads', '1'];
        const torch = torchCase(
          python.python,
          dir,
          [args[0], String(B), String(T), ...args.slice(1)],
          env,
        );
        log(
          torch.error
            ? `PyTorch ${m.name} failed: ${String(torch.error).slice(-300)}`
            : `PyTorch ${m.name}: peak RSS ${torch.peakRssMiB} MiB, ${num(torch.tokensPerS)} tok/s, ` +
                `${num(torch.cpuSeconds)} CPU s a step`,
        );
        rows.push({ ...torch, model: dir.split('/').pop(), method: m.name, side: 'torch' });
      }
    }
    const find = (model: unknown, method: string, side: string) =>
      rows.find((r) => r.model === model && r.method === method && r.side === side);
    const lines = [
      `One training step of ${B} × ${T} tokens, gradient checkpointing, AdamW; Troupe on the cpu ` +
        `backend with 1 BLAS thread, PyTorch ${python?.torch ?? '(not run)'} with 1 thread; ` +
        `OPENBLAS_CORETYPE ${coretype ?? '(default)'}; ${reps} timed step(s) after a warm-up. ` +
        'Peak RSS includes loading.',
      '',
      '| model | params | method | Troupe peak RSS (GiB) | Troupe tokens/s | PyTorch peak RSS (GiB) | PyTorch tokens/s |',
      '|---|---:|---|---:|---:|---:|---:|',
    ];
    for (const dir of models) {
      const model = dir.split('/').pop();
      for (const m of methods) {
        const t = find(model, m.name, 'troupe');
        const p = find(model, m.name, 'torch');
        const params = typeof t?.params === 'number' ? `${(t.params / 1e9).toFixed(2)} B` : '—';
        lines.push(
          `| ${model} | ${params} | ${m.name} | ${cell(t)} | ${m.torch ? cell(p) : 'n/a | n/a'} |`,
        );
      }
    }
    return { rows, markdown: lines.join('\n') };
  },
};
