import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
const SCRIPT = fileURLToPath(new URL('../torch/compare.py', import.meta.url));

/** One figure compare.py measured. */
export interface TorchRow {
  figure: string;
  config: string;
  threads: number;
  value: number;
  unit: string;
}

export interface TorchRun {
  readonly torch: string;
  readonly cores: number;
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
 * compare.py --config `config` at `threads` threads. OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are
 * set before Python starts: torch.set_num_threads does not reach the OpenBLAS pool Debian's
 * PyTorch multiplies with, which takes every core otherwise (measured: "1 thread" ran at 2 cores'
 * CPU time). `extra`: more compare.py arguments.
 */
export function runCompare(
  config: string,
  threads: number,
  quick: boolean,
  log: (line: string) => void,
  extra: readonly string[] = [],
): TorchRun {
  const dir = mkdtempSync(join(tmpdir(), 'troupe-torch-'));
  try {
    const out = join(dir, 'out.json');
    const n = String(threads);
    log(`PyTorch ${config}${extra.length ? ` ${extra.join(' ')}` : ''}, ${threads} thread(s)`);
    const r = spawnSync(
      PYTHON,
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
        env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n },
      },
    );
    if (r.status !== 0) {
      throw new Error(`compare.py --config ${config} --threads ${n} failed (exit ${r.status})`);
    }
    return JSON.parse(readFileSync(out, 'utf8')) as TorchRun;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
