import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { BackendName } from '../kernels/backends/index.js';
import { type MatMulShape, timeMatMul } from '../kernels/measure.js';
import { nativeKernels } from '../kernels/native.js';
import {
  type BackendAttempt,
  probeBackends,
  type RuntimeInfo,
  startRuntime,
} from '../kernels/runtime.js';

export interface DoctorReport {
  readonly node: string;
  readonly platform: string;
  readonly cpus: { readonly logical: number; readonly model: string };
  readonly memoryGiB: number;
  readonly backends: readonly (BackendAttempt & { readonly install: string | null })[];
  readonly auto: Pick<RuntimeInfo, 'backend' | 'device' | 'note' | 'reason'>;
  /** The optional native BLAS kernels: what they are, or why they are not there. */
  readonly native:
    | {
        readonly available: true;
        readonly blas: string;
        readonly threads: number;
        /** What would make it faster here, if anything. */
        readonly hint?: string;
      }
    | {
        readonly available: false;
        readonly reason: string;
        /** The command that builds them, where that is the fix. */
        readonly fix?: string;
      };
  readonly threads: {
    readonly logicalCpus: number;
    readonly perWasmActor: number;
    readonly libuvPool: number;
  };
  readonly matmul: ReadonlyArray<{
    readonly backend: BackendName;
    readonly shape: string;
    readonly gflops: number;
    readonly msPerCall: number;
  }>;
}

/** Shape used to measure each backend: the cpu backend is ~100× slower, so it gets a smaller one. */
function probeShape(backend: BackendName): MatMulShape {
  const n = backend === 'cpu' ? 256 : 512;
  return { a: [n, n], b: [n, n] };
}

/** Collect what `troupe doctor` reports. Switches this thread's backend while it measures. */
export async function runDoctor(opts: { measure?: boolean } = {}): Promise<DoctorReport> {
  const { BACKENDS } = await import('../kernels/backends/index.js');
  const probes = await probeBackends();
  const auto = await startRuntime({ backend: 'auto' });
  const matmul: DoctorReport['matmul'][number][] = [];
  if (opts.measure !== false) {
    for (const p of probes.filter((x) => x.available)) {
      await startRuntime({ backend: p.backend });
      const shape = probeShape(p.backend);
      const t = await timeMatMul(shape, { minMs: 250 });
      matmul.push({ backend: p.backend, shape: `${shape.a.join('×')}·${shape.b.join('×')}`, ...t });
    }
    await startRuntime({ backend: 'auto' });
  }
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: { logical: os.availableParallelism(), model: cpus[0]?.model.trim() ?? 'unknown' },
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    backends: probes.map((p) => ({
      ...p,
      install: p.available ? null : BACKENDS.get(p.backend)!.install,
    })),
    auto: { backend: auto.backend, device: auto.device, note: auto.note, reason: auto.reason },
    native: (() => {
      const n = nativeKernels();
      if (!n.available) {
        return { available: false as const, reason: n.reason, ...(n.fix ? { fix: n.fix } : {}) };
      }
      const blas = n.addon.config();
      return { available: true as const, blas, threads: n.addon.threads(), hint: blasHint(blas) };
    })(),
    threads: {
      logicalCpus: os.availableParallelism(),
      perWasmActor: 1,
      libuvPool: Number(process.env['UV_THREADPOOL_SIZE'] ?? 4),
    },
    matmul: matmul.map(({ backend, shape, gflops, msPerCall }) => ({
      backend,
      shape,
      gflops,
      msPerCall,
    })),
  };
}

/** A hint when OpenBLAS runs AVX2 kernels on a CPU that has AVX-512 (an inherited OPENBLAS_CORETYPE). */
function blasHint(config: string): string | undefined {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  if (!/\bavx512f\b/.test(flags) || !/\bHaswell\b|\bZen\b/.test(config)) return undefined;
  return (
    `this CPU has AVX-512 but OpenBLAS runs its AVX2 kernels${process.env.OPENBLAS_CORETYPE ? ` (OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE} in the environment)` : ''}; ` +
    'TROUPE_BLAS_CORETYPE=SkylakeX selects the AVX-512 ones (measured 190 vs 80 GFLOP/s per core)'
  );
}

/** The report as text for a terminal. */
export function formatDoctor(r: DoctorReport): string {
  const pad = Math.max(...r.backends.map((b) => b.backend.length));
  const lines = [
    'Troupe doctor',
    `  node ${r.node} · ${r.platform} · ${r.cpus.logical} logical CPUs (${r.cpus.model}) · ${r.memoryGiB} GiB`,
    '',
    'Backends',
    ...r.backends.flatMap((b) => [
      `  ${b.available ? '✓' : '✗'} ${b.backend.padEnd(pad)}  ${b.reason}`,
      ...(b.install ? [`    ${''.padEnd(pad)}  to use it: ${b.install}`] : []),
    ]),
    '',
    `auto picks: ${r.auto.backend} on ${r.auto.device} (${r.auto.note})`,
    `  why: ${r.auto.reason}`,
    '',
    r.native.available
      ? `native kernels: ✓ on wasm and cpu: matmuls on ${r.native.blas}, fused norms, activations, ` +
        `softmax, LM loss, AdamW and cached decoder blocks in C (BLAS threads now ${r.native.threads}; a run shares the ` +
        'cores out among its computing actors: runtime.blasThreads)'
      : `native kernels: ✗ ${r.native.reason}`,
    ...(r.native.available && r.native.hint ? [`  ${r.native.hint}`] : []),
    '',
    `Threads: ${r.threads.logicalCpus} logical CPUs; wasm runs ${r.threads.perWasmActor} thread per actor ` +
      `(place actors on separate cores); libuv pool ${r.threads.libuvPool}`,
  ];
  if (r.matmul.length > 0) {
    lines.push('', 'fp32 matmul (one actor thread)');
    for (const m of r.matmul) {
      lines.push(
        `  ${m.backend.padEnd(pad)}  ${m.gflops.toFixed(1).padStart(7)} GFLOP/s  (${m.shape}, ${m.msPerCall.toFixed(2)} ms)`,
      );
    }
  }
  return lines.join('\n');
}
