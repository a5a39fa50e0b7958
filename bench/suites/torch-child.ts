import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The PyTorch side of the side-by-side benchmarks: bench/torch/compare.py in a process of its
 * own, one config and one thread count a process (its peak RSS is that config's, and the thread
 * count is fixed before PyTorch loads its BLAS).
 */

/**
 * The Python that has PyTorch: TROUPE_TORCH_PYTHON (the reference venv's, with PyTorch 2.13:
 * `../shared/tools/reference-venv.sh` prints it), else the system one (Debian's python3-torch).
 */
export const PYTHON = process.env.TROUPE_TORCH_PYTHON ?? '/usr/bin/python3';

/**
 * The interpreters the torch suite compares against, each that can import torch, once per
 * PyTorch version: TROUPE_TORCH_PYTHON, the reference venv where reference-venv.sh puts it
 * (TROUPE_REFERENCE_VENV, else $TMPDIR/troupe-anchors: PyTorch 2.13), and the system Python
 * (Debian's python3-torch, 1.13).
 */
export function torchPythons(env = process.env): { python: string; torch: string }[] {
  const venv = env.TROUPE_REFERENCE_VENV ?? join(env.TMPDIR ?? '/tmp', 'troupe-anchors');
  const candidates = [env.TROUPE_TORCH_PYTHON, join(venv, 'bin', 'python'), '/usr/bin/python3'];
  const out: { python: string; torch: string }[] = [];
  for (const python of new Set(candidates.filter((p): p is string => !!p && existsSync(p)))) {
    const torch = torchVersion(python);
    if (torch && !out.some((o) => o.torch === torch)) out.push({ python, torch });
  }
  return out;
}

function torchVersion(python: string): string | undefined {
  const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * The OpenBLAS kernel class both sides run: TROUPE_BLAS_CORETYPE, else an OPENBLAS_CORETYPE the
 * environment sets, else SkylakeX where the CPU has AVX-512 F/BW/DQ/VL (the native addon's own
 * rule, native/troupe_native.c: OpenBLAS 0.3.21 takes Zen 4/5 for Haswell, its AVX2 kernels),
 * else undefined (OpenBLAS's own choice). `flags`: the CPU's, as /proc/cpuinfo lists them.
 */
export function blasCoreType(
  env: Readonly<Record<string, string | undefined>> = process.env,
  flags: readonly string[] = cpuFlags(),
): string | undefined {
  const set = env.TROUPE_BLAS_CORETYPE || env.OPENBLAS_CORETYPE;
  if (set) return set;
  const avx512 = ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => flags.includes(f));
  return avx512 ? 'SkylakeX' : undefined;
}

function cpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return line
      ? line
          .slice(line.indexOf(':') + 1)
          .trim()
          .split(/\s+/)
      : [];
  } catch {
    return []; // not Linux: OpenBLAS (or Accelerate) chooses
  }
}
const SCRIPT = fileURLToPath(new URL('../torch/compare.py', import.meta.url));

/** One figure compare.py measured. */
export interface TorchRow {
  figure: string;
  config: string;
  threads: number;
  value: number;
  unit: string;
  /** The slowest and the fastest timed call, as rates (timed rows). */
  min?: number;
  max?: number;
  /** Timed calls. */
  samples?: number;
}

export interface TorchRun {
  readonly torch: string;
  readonly cores: number;
  /** What compare.py's PyTorch ran: attention, AdamW, BLAS (OpenBLAS's core or MKL), oneDNN. */
  readonly kernels?: Readonly<Record<string, string>>;
  /** The process's CPU time over its wall time (≈ threads busy). */
  readonly cpuPerWall?: number;
  readonly rows: TorchRow[];
}

/** Whether the PyTorch side can run here, and why not. */
export function torchAvailable(): { ok: true } | { ok: false; reason: string } {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  });
  if (r.status === 0) return { ok: true };
  return {
    ok: false,
    reason: `${PYTHON} cannot import torch (apt-get install python3-torch, or set TROUPE_TORCH_PYTHON)`,
  };
}

/**
 * compare.py --config `config` at `threads` threads, with `python` (default PYTHON).
 * OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS are set before Python starts:
 * torch.set_num_threads does not reach the OpenBLAS pool Debian's PyTorch multiplies with, which
 * takes every core otherwise (measured: "1 thread" ran at 2 cores' CPU time). OPENBLAS_CORETYPE
 * is set to blasCoreType(), the class Troupe's addon runs, so Debian's PyTorch (which multiplies
 * with the same OpenBLAS) gets the same kernels by choice; PyTorch 2.13's wheel multiplies with
 * MKL (fp32) and oneDNN (bf16), which choose their own. `extra`: more compare.py arguments.
 */
export function runCompare(
  config: string,
  threads: number,
  quick: boolean,
  log: (line: string) => void,
  extra: readonly string[] = [],
  python: string = PYTHON,
): TorchRun {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-torch-'));
  try {
    const out = join(dir, 'out.json');
    const n = String(threads);
    log(`PyTorch ${config}${extra.length ? ` ${extra.join(' ')}` : ''}, ${threads} thread(s)`);
    const core = blasCoreType();
    const r = spawnSync(
      python,
      [
        SCRIPT,
        '--config',
        config,
        '--out',
        out,
        '--threads',
        n,
        ...(quick ? ['--quick'] : []),
      ].concat(extra),
      {
        encoding: 'utf8',
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          OPENBLAS_NUM_THREADS: n,
          OMP_NUM_THREADS: n,
          MKL_NUM_THREADS: n,
          ...(core ? { OPENBLAS_CORETYPE: core } : {}),
        },
      },
    );
    if (r.status !== 0) {
      throw new Error(
        `${python} compare.py --config ${config} --threads ${n} failed (exit ${r.status})`,
      );
    }
    return JSON.parse(readFileSync(out, 'utf8')) as TorchRun;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
