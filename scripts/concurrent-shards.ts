/**
 * Why two data-parallel replicas' updates run slower at once than one alone (#16 item 8): N
 * worker threads in one process run the same work, released together by a barrier each run, and
 * each reports its own wall time per run:
 *
 *   OPENBLAS_CORETYPE=SkylakeX TROUPE_BLAS_THREADS=1 npx tsx scripts/concurrent-shards.ts [work = update] [runs = 12] [threads = 1,2] [young MB]
 *   node --import tsx --single-threaded-gc scripts/concurrent-shards.ts ...   (V8 flags for all)
 * (v8.setFlagsFromString('--single-threaded-gc') at run time, before the workers start, crashed
 * Node 20 in a GC finalisation: the flag has to be on the command line, which NODE_OPTIONS
 * refuses for it.)
 *
 *   update  the GRPO bench job's policy update of one replica's shard (4 prompts × 8 samples ×
 *           64 tokens, shared prefix: scripts/grpo-update-ab.ts' pass), forward + backward
 *   gemm    the native sgemm alone at the update's most common shape, [1024,128]·[128,128],
 *           300 calls a run (compute in L2, no allocation, no tfjs): what the cores give
 *   stream  a 64 MB Float32Array copied 8 times a run (memory bandwidth, no compute)
 *   alloc   tfjs dispatch and allocation with little arithmetic: 400 × (Reshape, native Add,
 *           Identity) of a [1024, 128] tensor a run, in one tidy
 *
 * `threads` lists the thread counts to try in turn (1,2 runs the work alone, then two at once).
 * `young MB` sets each worker's resourceLimits.maxYoungGenerationSizeMb (V8's semi-spaces).
 * Prints, per thread count, the median and best wall ms of each thread's runs and that thread's
 * own CPU ms a run (/proc/thread-self: own CPU ≈ wall means it was never off its core, so a
 * slowdown at two threads is the shared hardware, not preemption), the process's CPU over the
 * whole (setup included) and the CPU of each named thread of the process.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { sharedPrefixRows, tokenStream } from '../bench/tokens.js';

interface Job {
  work: string;
  runs: number;
  barrier: SharedArrayBuffer;
  threads: number;
  index: number;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wait until all `n` threads arrived for run r (a counter that only grows). */
function barrier(a: Int32Array, n: number, r: number): void {
  Atomics.add(a, 0, 1);
  const target = n * (r + 1);
  for (;;) {
    const now = Atomics.load(a, 0);
    if (now >= target) break;
    Atomics.wait(a, 0, now, 1000);
  }
}

async function makeWork(work: string): Promise<() => Promise<void>> {
  const tf = await import('../src/kernels/tf.js');
  const { startRuntime } = await import('../src/kernels/runtime.js');
  await startRuntime({ backend: 'wasm' });
  if (work === 'update') {
    const { grpoModelConfig, GRPO_JOB: j } = await import('../bench/suites/rl-grpo.js');
    const { rightPad } = await import('../src/data/batching/collate.js');
    const { CausalLM } = await import('../src/policy/index.js');
    const { targetLogProbs } = await import('../src/policy/target-logprobs.js');
    const config = grpoModelConfig();
    const B = 4 * j.samples;
    const T = 64;
    const batch = rightPad(sharedPrefixRows(tokenStream(config.vocabSize), B, T, j.samples), 0);
    const model = CausalLM.init(config, { seed: 1 });
    const vars = [...model.params.values()];
    return async () => {
      const { value, grads } = tf.variableGrads(() => {
        const { logp } = targetLogProbs(model, batch, {
          start: T / 2,
          entropy: 'metric',
          sharePrefix: true,
        });
        return tf.neg(tf.mean(logp)) as import('../src/kernels/tf.js').Scalar;
      }, vars);
      await value.data();
      tf.dispose([value, ...Object.values(grads)]);
    };
  }
  if (work === 'gemm') {
    const { nativeKernels } = await import('../src/kernels/native.js');
    const st = nativeKernels();
    if (!st.available) throw new Error(`no native addon: ${st.reason}`);
    const addon = st.addon;
    const [M, N, K] = [1024, 128, 128];
    const a = new Float32Array(M * K).map(() => Math.random());
    const b = new Float32Array(K * N).map(() => Math.random());
    const c = new Float32Array(M * N);
    return async () => {
      for (let i = 0; i < 300; i++) addon.sgemmBatched(false, false, 1, M, N, K, a, 0, b, 0, c);
    };
  }
  if (work === 'stream') {
    const src = new Float32Array(16 << 20).fill(1);
    const dst = new Float32Array(16 << 20);
    return async () => {
      for (let i = 0; i < 8; i++) dst.set(src);
    };
  }
  if (work === 'alloc') {
    const x = tf.variable(tf.zeros([32, 32, 128]));
    return async () => {
      tf.tidy(() => {
        for (let i = 0; i < 400; i++) {
          const r = tf.reshape(x, [1024, 128]);
          tf.add(r, r);
          tf.clone(r);
        }
      });
    };
  }
  throw new Error(`work must be update, gemm, stream or alloc, got '${work}'`);
}

/** utime + stime (clock ticks, 10 ms) and name of each thread of this process, by thread id */
function threadTicks(): Map<string, [string, number]> {
  const out = new Map<string, [string, number]>();
  let tids: string[] = [];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      out.set(tid, [name, Number(f[11]) + Number(f[12])]);
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** utime + stime of the calling thread, clock ticks (10 ms) */
function ownTicks(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

if (!isMainThread) {
  const job = workerData as Job;
  const run = await makeWork(job.work);
  await run();
  await run(); // warm
  const a = new Int32Array(job.barrier);
  const walls: number[] = [];
  const own0 = ownTicks();
  for (let r = 0; r < job.runs; r++) {
    barrier(a, job.threads, r);
    const t0 = performance.now();
    await run();
    walls.push(performance.now() - t0);
  }
  parentPort?.postMessage({ walls, ownMs: (ownTicks() - own0) * 10 });
} else {
  const work = process.argv[2] ?? 'update';
  const runs = Number(process.argv[3] ?? 12);
  const counts = (process.argv[4] ?? '1,2').split(',').map(Number);
  const young = process.argv[5] ? Number(process.argv[5]) : undefined;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer`);
  const { createRequire } = await import('node:module');
  const { dirname, join } = await import('node:path');
  const { pathToFileURL } = await import('node:url');
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  const api = pathToFileURL(join(dirname(pkgJson), pkg.exports['./esm/api'].import.default)).href;
  const self = pathToFileURL(fileURLToPath(import.meta.url)).href;
  say(
    `${work}, ${runs} runs, BLAS threads ${process.env.TROUPE_BLAS_THREADS ?? 'default'}, core ${process.env.OPENBLAS_CORETYPE ?? 'default'}, execArgv [${process.execArgv.join(' ')}]${young ? `, young ${young} MB` : ''}`,
  );
  for (const n of counts) {
    const barrierBuf = new SharedArrayBuffer(4);
    const before = threadTicks();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: n },
        (_, index) =>
          new Promise<{ walls: number[]; ownMs: number }>((resolve, reject) => {
            const job: Job = { work, runs, barrier: barrierBuf, threads: n, index };
            const w = new Worker(
              `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); }).catch((e) => { setImmediate(() => { throw e; }); });`,
              {
                eval: true,
                workerData: job,
                ...(young ? { resourceLimits: { maxYoungGenerationSizeMb: young } } : {}),
              },
            );
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    const cpu = process.cpuUsage(c0);
    const wall = performance.now() - t0;
    const after = threadTicks();
    for (const [i, { walls, ownMs }] of results.entries()) {
      say(
        `  ${n} thread(s), thread ${i}: median ${median(walls).toFixed(1)} best ${Math.min(...walls).toFixed(1)} ms, its own CPU ${(ownMs / runs).toFixed(0)} ms a run  [${walls.map((w) => w.toFixed(0)).join(' ')}]`,
      );
    }
    say(
      `  ${n} thread(s): process CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms over ${wall.toFixed(0)} ms wall (setup included)`,
    );
    const byName = new Map<string, number>();
    for (const [tid, [name, ticks]] of after) {
      const d = ticks - (before.get(tid)?.[1] ?? 0);
      if (d > 0) byName.set(name, (byName.get(name) ?? 0) + d);
    }
    const own = results.reduce((t, x) => t + x.ownMs, 0);
    say(`  timed runs: the workers' own CPU ${own} ms in all`);
    say(
      `  CPU by thread name (ms, threads that ended are missing): ${[...byName]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v * 10}`)
        .join(', ')}`,
    );
  }
}
