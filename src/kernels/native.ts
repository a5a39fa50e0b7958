import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * Troupe's optional native CPU kernels (native/troupe_native.c: a Node-API addon over OpenBLAS),
 * built by Troupe's install script where a C compiler and OpenBLAS exist (`apt-get install
 * libopenblas-dev`), or later by `npm run build:native` (`npx troupe-build-native` in a project
 * that depends on Troupe). Everything runs without it; with it, BatchMatMul on the wasm and cpu
 * backends goes to a multithreaded BLAS. `TROUPE_NATIVE=0` turns it off.
 *
 * (Past 300 lines: most of it is `NativeAddon`, the addon's whole typed surface, one documented
 * signature per C export; the loader and the per-thread BLAS thread count follow it.)
 */
export interface NativeAddon {
  /**
   * for i < batch: C_i[M, N] = op(A_i)·op(B_i), A_i at a[i·strideA], B_i at b[i·strideB] (0
   * broadcasts), C_i at c[i·M·N]; row-major, op = transpose when the flag is set.
   */
  sgemmBatched(
    transA: boolean,
    transB: boolean,
    batch: number,
    M: number,
    N: number,
    K: number,
    a: Float32Array,
    strideA: number,
    b: Float32Array,
    strideB: number,
    c: Float32Array,
  ): void;
  /** y[r, :] = x[r, :]·W + bias for W [in, out]; an empty bias is none. */
  linearForward(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    y: Float32Array,
  ): void;
  /**
   * linearForward in the order OpenBLAS's SkylakeX sgemm sums (native/seqgemm.c, the decoder
   * block's projections at > 16 rows): whether it ran (false where it does not apply: fewer rows,
   * another BLAS core, several BLAS threads, in > 768; y not written).
   */
  linearInOrder?(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    y: Float32Array,
  ): boolean;

  // Row kernels (native/rows.c). Row-major views; outputs are written, never inputs.
  /** y[g, h, r, :] = softmax(scale·x[g, h, r, :] + bias[g, r, :]); an empty bias is none. */
  scaledSoftmax(
    x: Float32Array,
    bias: Float32Array,
    groups: number,
    heads: number,
    rows: number,
    cols: number,
    scale: number,
    y: Float32Array,
  ): void;
  /** dx = scale·y ⊙ (dy − Σ_j dy·y), per row. */
  scaledSoftmaxBackward(
    y: Float32Array,
    dy: Float32Array,
    rows: number,
    cols: number,
    scale: number,
    dx: Float32Array,
  ): void;
  /** lse[r] = log Σ_j e^z[r, j], lp[r] = z[r, labels[r]] − lse[r]. */
  logSoftmaxPick(
    z: Float32Array,
    labels: Int32Array,
    rows: number,
    cols: number,
    lp: Float32Array,
    lse: Float32Array,
  ): void;
  /** g[r, j] = dy[r]·([labels[r] − offset = j] − e^(z[r, j] − lse[r])) for a block of columns. */
  logSoftmaxPickBackward(
    z: Float32Array,
    lse: Float32Array,
    labels: Int32Array,
    dy: Float32Array,
    rows: number,
    cols: number,
    offset: number,
    g: Float32Array,
  ): void;
  /** H[r] = −Σ_j e^(z[r, j] − lse[r])·(z[r, j] − lse[r]): the entropy of each row's softmax. */
  rowEntropy(z: Float32Array, lse: Float32Array, rows: number, cols: number, H: Float32Array): void;
  /** out[j] = Σ_i x[i, j] over an [outer, inner] view. */
  columnSums(x: Float32Array, outer: number, inner: number, out: Float32Array): void;
  /**
   * c [M, N] = op(a)·op(b) with a and b rounded to bfloat16 and fp32 sums (native/bf16.c): AMX
   * tiles, AVX512-BF16 or, elsewhere, the fp32 sgemm on the rounded values. a is [M, K]
   * ([K, M] when transA), b [K, N] ([N, K] when transB), row-major. Runs on this thread's BLAS
   * thread count (setThreads), from 2^22 multiply-adds a thread.
   */
  bf16Gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
  ): void;
  /**
   * for i < batch: C_i [M, N] = op(A_i)·op(B_i) as bf16Gemm computes it, A_i at a[i·strideA],
   * B_i at b[i·strideB] (0 broadcasts), C_i at c[i·M·N]: sgemmBatched's arguments.
   */
  bf16GemmBatched(
    transA: boolean,
    transB: boolean,
    batch: number,
    M: number,
    N: number,
    K: number,
    a: Float32Array,
    strideA: number,
    b: Float32Array,
    strideB: number,
    c: Float32Array,
  ): void;
  /**
   * gemmStrided's products (attention's heads where they lie) in bf16 with fp32 sums: for b < B,
   * h < H, C_bh [M, N] = op(A_bh)·op(B_bh), X_bh = x + b·lx[0] + h·lx[1], rows lx[2] apart;
   * dims [B, H, M, N, K], la/lb/lc [per b, per h, leading dimension]. Each product has the bits
   * of bf16GemmBatched on dense copies.
   */
  bf16GemmStrided?(
    transA: boolean,
    transB: boolean,
    dims: Int32Array,
    a: Float32Array,
    la: Int32Array,
    b: Float32Array,
    lb: Int32Array,
    c: Float32Array,
    lc: Int32Array,
  ): void;
  /** y [rows, out] = x·W + bias as bf16Gemm computes x·W, W [in, out]; an empty bias is none. */
  bf16Linear(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    y: Float32Array,
  ): void;
  /**
   * y_i [rows, out_i] = x·W_i + b_i for three W_i [in, out_i] (out_i = y_i.length / rows), each
   * the bits bf16Linear gives it, x packed once; an empty b_i is none.
   */
  bf16Linear3?(
    x: Float32Array,
    rows: number,
    inDim: number,
    w0: Float32Array,
    b0: Float32Array,
    y0: Float32Array,
    w1: Float32Array,
    b1: Float32Array,
    y1: Float32Array,
    w2: Float32Array,
    b2: Float32Array,
    y2: Float32Array,
  ): void;
  /**
   * bf16Linear3's gradients (each argument after inDim three arrays): for each i what
   * bf16LinearBackward(dy[i], x, w[i], ...) gives (dx[i] [rows, in], dw[i] [in, out_i], db[i]
   * [out_i]; out_i = dy[i].length / rows), xᵀ packed once.
   */
  bf16Linear3Backward?(
    x: Float32Array,
    rows: number,
    inDim: number,
    dy: readonly Float32Array[],
    w: readonly Float32Array[],
    dx: readonly Float32Array[],
    dw: readonly Float32Array[],
    db: readonly Float32Array[],
  ): void;
  /**
   * bf16Linear's gradients from dy [rows, out]: dx [rows, in] = dy·Wᵀ and dw [in, out] = xᵀ·dy
   * as bf16Gemm computes them, db [out] = Σ over rows of dy in fp32 (summed while dw's product
   * packs dy); an empty dx, dw or db is not computed.
   */
  bf16LinearBackward?(
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    dx: Float32Array,
    dw: Float32Array,
    db: Float32Array,
  ): void;
  /**
   * y [rows, out] = x·W + bias for W [in, out] stored as bfloat16 bits in panels of 32 columns
   * (toBf16Panels: ⌈out/32⌉·32·in values), read as they are: 32 rows or more on the bf16 kernel
   * (x rounded to bf16), fewer (decoding) with x in fp32 against the widened weights; fp32 sums,
   * the BLAS thread count (setThreads). An empty bias is none.
   */
  bf16LinearW(
    x: Float32Array,
    w: Uint16Array,
    bias: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    y: Float32Array,
  ): void;
  /**
   * for i < ws.length (1 to 4): ys[i] [rows, outs[i]] = x·W_i + biases[i], as bf16LinearW of
   * each gives it (the same bits), the few-row ones in one pass over all the weights.
   */
  bf16LinearWMany(
    x: Float32Array,
    ws: readonly Uint16Array[],
    biases: readonly Float32Array[],
    rows: number,
    inDim: number,
    outs: Int32Array,
    ys: readonly Float32Array[],
  ): void;
  /** dst[i] = src[i] rounded to bfloat16 (nearest even), as its bits. */
  toBf16(src: Float32Array, dst: Uint16Array): void;
  /** W [in, out] (row-major) rounded to bfloat16 into bf16LinearW's panels ([⌈out/32⌉][in][32]). */
  toBf16Panels(src: Float32Array, inDim: number, outDim: number, dst: Uint16Array): void;
  /** Which kernel bf16Gemm runs on this machine: 'amx', 'avx512-bf16' or 'fp32'. */
  bf16Path(): string;
  /**
   * One decoder block over the new tokens of a cached forward (native/decode.c): norm, q/k/v
   * (RoPE), the keys and values written into the caches at P.., attention over 0..P+T−1, the
   * output projection, norm, MLP, both residuals.
   *   dims [B, T, d, H, KV, hd, I, P, capacity, norm (0 layer, 1 rms, 2 rms with 1 + γ),
   *         mlp (0 gelu, 1 swiglu, 2 geglu), rot (rotated width), qkNorm (0/1), sandwich (0/1),
   *         w16 (optional, 1: the seven projection weights are bf16LinearW's panels, each passed
   *         as a Float32Array view of the panels' bytes)]
   *   floats [eps, query scale, attention soft-cap (0: none)]
   *   params: the 22 of DECODE_PARAMS (native-decode.ts) in order, an empty array where absent
   *   cos, sin [B·T, rot] or empty; bias [B, T, P+T]; caches [B, KV, capacity, hd]; x, y [B, T, d]
   */
  decodeBlock(
    dims: Int32Array,
    floats: Float64Array,
    x: Float32Array,
    params: Float32Array[],
    cos: Float32Array,
    sin: Float32Array,
    bias: Float32Array,
    cacheK: Float32Array,
    cacheV: Float32Array,
    y: Float32Array,
  ): void;
  // Fused element-wise kernels (native/fused.c). Row-major [rows, cols] views; outputs are
  // written, never inputs. Statistics are per row: mean and rstd = 1/√(var + ε) (or 1/√(ms + ε)).
  /** LayerNorm: y = (x − mean)·rstd·γ + β; writes y, mean, rstd. */
  layerNormForward(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    rows: number,
    cols: number,
    eps: number,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
  ): void;
  /** LayerNorm backward: writes dx [rows, cols], dgamma and dbeta [cols]. */
  layerNormBackward(
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  /** RMSNorm: y = x·rstd·γ; writes y and rstd. */
  rmsNormForward(
    x: Float32Array,
    gamma: Float32Array,
    rows: number,
    cols: number,
    eps: number,
    y: Float32Array,
    rstd: Float32Array,
  ): void;
  /** RMSNorm backward: writes dx [rows, cols] and dgamma [cols]. */
  rmsNormBackward(
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    dx: Float32Array,
    dgamma: Float32Array,
  ): void;
  /** y = f(x), f = 0 GELU (tanh approximation), 1 SiLU. */
  activationForward(kind: number, x: Float32Array, y: Float32Array): void;
  /** dx = f′(x)·dy. */
  activationBackward(kind: number, x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** y = a ∘ b over views of one length, ∘ by kind: 0 +, 1 −, 2 ·, 3 / (IEEE float32, unflushed). */
  binary(kind: number, a: Float32Array, b: Float32Array, y: Float32Array): void;
  /** y = a + b over views of one length (IEEE float32 sums: no subnormal flushing). */
  add(a: Float32Array, b: Float32Array, y: Float32Array): void;
  /** y = transpose(x, perm) for a perm keeping the last axis (shape: x's), copied by runs. */
  permuteRuns(x: Float32Array, y: Float32Array, shape: Int32Array, perm: Int32Array): void;
  /**
   * Rotary embeddings (rotate-half layout) over x [rows, heads, headDim] with cos, sin
   * [rows, dim]: y = x·cos + rotate_half(x)·sin on the first dim channels, the rest copied;
   * backward 1 applies the transpose (x the output's gradient, y the input's).
   */
  rope(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    y: Float32Array,
    rows: number,
    heads: number,
    headDim: number,
    dim: number,
    backward: number,
  ): void;

  // Host loops for the optimizer step (native/host.c), on Float32Arrays (host arrays or views of
  // the wasm heap). Arithmetic in double, stored as float, in the JS path's order of operations.
  /** y[offset + i] += alpha·x[i] for i < x.length (x may not overlap y). */
  axpy(y: Float32Array, offset: number, x: Float32Array, alpha: number): void;
  /**
   * axpy(y, offsets[k], xs[k], alpha) for every k, one call on the BLAS threads (the same bits);
   * the ranges of y in order and apart, no x overlapping y.
   */
  axpyMany(
    y: Float32Array,
    offsets: Float64Array,
    xs: readonly Float32Array[],
    alpha: number,
  ): void;
  /** Σ x[i]² accumulated in double. */
  sumSquares(x: Float32Array): number;
  /** x[i] *= alpha. */
  scale(x: Float32Array, alpha: number): void;
  /**
   * Σ over k, in order, of sumSquares(xs[k]) (s = 0; s += each: the bits of those calls), the
   * arrays summed on the BLAS threads, each whole.
   */
  sumSquaresMany(xs: readonly Float32Array[]): number;
  /**
   * One AdamW update (PyTorch's AdamW) of g = float(grad·gradScale): m ← β₁m + (1−β₁)g,
   * v ← β₂v + (1−β₂)g², p ← p·(1 − lr·wd) − lr·(m/bc1)/(√(v/bc2) + ε), bc = 1 − βᵗ. Written to
   * paramOut, mOut and vOut, each its input (in place) when absent; an output is its own input
   * or overlaps nothing.
   */
  adamwStep(
    param: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
    gradScale?: number,
    paramOut?: Float32Array,
    mOut?: Float32Array,
    vOut?: Float32Array,
  ): void;
  /**
   * adamwStep(params[k], grads[k], ms[k], vs[k], ...scalars[8k .. 8k + 7]) in place for every k
   * (the scalars in adamwStep's order: lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale),
   * one call on the BLAS threads, the same bits. A param, m or v shares memory with no other
   * array; grads may share memory with each other.
   */
  adamwSteps(
    params: readonly Float32Array[],
    grads: readonly Float32Array[],
    ms: readonly Float32Array[],
    vs: readonly Float32Array[],
    scalars: Float64Array,
  ): void;

  // NF4 weights (native/nf4.c): a matrix Q [out, in] as src/policy/quantize/nf4.ts stores it,
  // given as (codes, absmaxCodes, absmaxScale, absmaxCode = the 256-value map, offset).
  /**
   * The 4-bit NF4 codes (two a byte, high nibble first) and fp32 absmax of w in blocks of 64, as
   * src/policy/quantize/nf4.ts computes them (which then double-quantises the absmax values).
   */
  nf4QuantizeBlocks(w: Float32Array, codes: Uint8Array, absmax: Float32Array): void;
  /** y[i] = Q's value start + i (flattened row-major), dequantised, for i < count. */
  nf4Dequantize(
    codes: Uint8Array,
    absmaxCodes: Uint8Array,
    absmaxScale: Float32Array,
    absmaxCode: Float32Array,
    offset: number,
    start: number,
    count: number,
    y: Float32Array,
  ): void;
  /** y [rows, out] = x [rows, in]·Qᵀ, Q dequantised tileRows rows at a time (0: about 4 MB). */
  nf4Linear(
    x: Float32Array,
    codes: Uint8Array,
    absmaxCodes: Uint8Array,
    absmaxScale: Float32Array,
    absmaxCode: Float32Array,
    offset: number,
    rows: number,
    inDim: number,
    outDim: number,
    tileRows: number,
    y: Float32Array,
  ): void;
  /** dx [rows, in] = dy [rows, out]·Q, Q dequantised tile by tile as in nf4Linear. */
  nf4LinearGradX(
    dy: Float32Array,
    codes: Uint8Array,
    absmaxCodes: Uint8Array,
    absmaxScale: Float32Array,
    absmaxCode: Float32Array,
    offset: number,
    rows: number,
    inDim: number,
    outDim: number,
    tileRows: number,
    dx: Float32Array,
  ): void;

  // Sampling's rows (native/sample.c), to the bit what src/policy/sampling.ts computes in JS.
  /**
   * max = max_i z[i] (arg: its first index), e[i] = exp((z[i] − max)·scale) in float64 (V8's
   * Math.exp to the bit), total = Σ e[i] in index order; out = [max, arg, total].
   */
  sampleExpRow(z: Float32Array, scale: number, e: Float64Array, out: Float64Array): void;
  /** sampleExpRow of each row of z [rows, V] into e [rows, V] and out [rows, 3], rows over the BLAS threads. */
  sampleExpRows(
    z: Float32Array,
    rows: number,
    scale: number,
    e: Float64Array,
    out: Float64Array,
  ): void;
  /** The first v with target < e[0] + … + e[v] (else the last), then back past zeros. */
  categoricalRow(e: Float64Array, target: number): number;
  /** y[i] = exp(x[i]) as sampleExpRow computes it (for the tests that hold it to Math.exp). */
  exp64(x: Float64Array, y: Float64Array): void;

  /** BLAS threads per call. */
  threads(): number;

  setThreads(n: number): void;
  /** The BLAS build (`OpenBLAS 0.3.21 … Haswell MAX_THREADS=64`). */
  config(): string;
}

export type NativeStatus =
  | { readonly available: true; readonly addon: NativeAddon; readonly path: string }
  | {
      readonly available: false;
      readonly reason: string;
      /** The command that builds it, where building is the fix. */
      readonly fix?: string;
    };

/** Where `npm run build:native` puts the addon (the same from src/kernels and dist/kernels). */
export const NATIVE_ADDON_PATH = fileURLToPath(
  new URL('../../native/build/troupe_native.node', import.meta.url),
);
/** Why the last build attempt (the install script's, say) did not build it; build-native.mjs writes it. */
const NOT_BUILT_PATH = fileURLToPath(new URL('../../native/build/not-built.txt', import.meta.url));

/** True when this copy of Troupe is a dependency, installed under a node_modules folder. */
const installedAsDependency = (path: string) => /[\\/]node_modules[\\/]/.test(path);

/**
 * The command that builds the addon from where this copy of Troupe is: the `troupe-build-native`
 * bin in a project that depends on Troupe, the npm script in a clone.
 */
export function nativeBuildCommand(path: string = NATIVE_ADDON_PATH): string {
  return installedAsDependency(path) ? 'npx troupe-build-native' : 'npm run build:native';
}

/** Why the addon is not there: the last build's own words, or what an install that built nothing means. */
export function notBuiltReason(
  lastAttempt: string | undefined,
  path: string = NATIVE_ADDON_PATH,
): string {
  if (lastAttempt !== undefined) return `not built (the last attempt said: ${lastAttempt.trim()})`;
  if (installedAsDependency(path)) {
    return (
      "not built: Troupe's install script did not run (npm skips it under --ignore-scripts, and " +
      'npm 11 until it is approved: npm install-scripts approve troupe)'
    );
  }
  return 'not built';
}

let cached: NativeStatus | undefined;
/** This thread's own BLAS threads per call, once its runtime gave it some (`useThreadBlasThreads`). */
let threadBlas: number | undefined;

/**
 * Where a run leaves the count it chose for the threads it starts (`useBlasThreads`): apart from
 * the user's TROUPE_BLAS_THREADS / OPENBLAS_NUM_THREADS, which `planBlasThreads` reads, so that
 * the next run in this process plans afresh instead of taking one run's choice for the user's.
 */
export const RUN_BLAS_THREADS_ENV = 'TROUPE_RUN_BLAS_THREADS';

/**
 * BLAS threads per call: what the run that started this thread chose (RUN_BLAS_THREADS_ENV), else
 * TROUPE_BLAS_THREADS, else OPENBLAS_NUM_THREADS, else 1. The pool is per process, shared by every
 * actor thread; a run sets its count for its actors before it starts them (`useBlasThreads`).
 */
function blasThreads(): number {
  if (threadBlas !== undefined) return threadBlas;
  const raw =
    process.env[RUN_BLAS_THREADS_ENV] ??
    process.env.TROUPE_BLAS_THREADS ??
    process.env.OPENBLAS_NUM_THREADS;
  const n = raw === undefined ? 1 : Number(raw);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/**
 * BLAS threads per call for a run whose `computeActors` actors do tensor work at the same time
 * on this machine: the configured count (`runtime.blasThreads`), else an explicit
 * TROUPE_BLAS_THREADS / OPENBLAS_NUM_THREADS, else the cores shared out among the actors (at least
 * one each). Measured on 2 cores: a lone small-model pretraining actor ran 2008 tokens/s with one
 * thread, 3091 with two, and 1757 as two data-parallel replicas of one thread each; a PPO
 * iteration with five actors ran 8.2 s with one thread per call and 14.6 s with two (threads
 * spinning on cores the other actors need).
 */
export function planBlasThreads(
  computeActors: number,
  configured?: number,
  env: Readonly<Record<string, string | undefined>> = process.env,
  cores: number = availableParallelism(),
): number {
  if (configured !== undefined) return configured;
  const raw = env.TROUPE_BLAS_THREADS ?? env.OPENBLAS_NUM_THREADS;
  const n = raw === undefined ? Number.NaN : Number(raw);
  if (Number.isInteger(n) && n >= 1) return n;
  return Math.max(1, Math.floor(cores / Math.max(1, computeActors)));
}

/**
 * Set the BLAS threads of the actors a run is about to start (they read RUN_BLAS_THREADS_ENV when
 * they load the addon) and of this thread's addon, if loaded. Returns the count. The user's
 * TROUPE_BLAS_THREADS is left as it was: a later run plans from it, not from this run's count.
 */
export function useBlasThreads(computeActors: number, configured?: number): number {
  const n = planBlasThreads(computeActors, configured);
  process.env[RUN_BLAS_THREADS_ENV] = String(n);
  if (cached?.available) cached.addon.setThreads(n);
  return n;
}

/**
 * Give this thread its own BLAS threads per call (an actor's `blasThreads`, from its runtime
 * spec), whatever the process default. Takes effect now if the addon is loaded, else when it loads.
 */
export function useThreadBlasThreads(n: number): void {
  threadBlas = n;
  if (cached?.available) cached.addon.setThreads(n);
}

/** This thread's BLAS threads per call, when the native kernels are loaded in it; else undefined. */
export function threadBlasThreads(): number | undefined {
  return cached?.available ? blasThreads() : undefined;
}

/**
 * The addon with every kernel keeping this thread's BLAS thread count. OpenBLAS keeps one count
 * per process (openblas_set_num_threads sets a global), so an actor given 2 threads and one given
 * 1 would otherwise each run with whichever set it last: each call first puts this thread's count
 * back when another thread changed it (one cheap getter call while all threads agree).
 */
function ownThreads(raw: NativeAddon): NativeAddon {
  const own: Record<string, unknown> = {};
  // Node-API exports are not enumerable: list them by name.
  for (const name of Object.getOwnPropertyNames(raw)) {
    const f = (raw as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
    if (typeof f !== 'function') own[name] = f;
    else if (name === 'threads' || name === 'config') own[name] = f;
    else if (name === 'setThreads') {
      own[name] = (n: number) => {
        raw.setThreads(n);
        threadBlas = n;
      };
    } else {
      own[name] = (...args: unknown[]) => {
        const want = blasThreads();
        if (raw.threads() !== want) raw.setThreads(want);
        return f(...args);
      };
    }
  }
  return own as unknown as NativeAddon;
}

/** The native addon if it is built and loads (once per thread), or why not. */
export function nativeKernels(): NativeStatus {
  if (cached) return cached;
  if (process.env.TROUPE_NATIVE === '0') {
    cached = { available: false, reason: 'turned off by TROUPE_NATIVE=0' };
  } else if (!existsSync(NATIVE_ADDON_PATH)) {
    let lastAttempt: string | undefined;
    try {
      lastAttempt = readFileSync(NOT_BUILT_PATH, 'utf8');
    } catch {
      lastAttempt = undefined;
    }
    cached = {
      available: false,
      reason: `${notBuiltReason(lastAttempt)}; build them with \`${nativeBuildCommand()}\` (needs a C compiler and OpenBLAS: apt-get install libopenblas-dev)`,
      fix: nativeBuildCommand(),
    };
  } else {
    try {
      const addon = ownThreads(createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon);
      addon.setThreads(blasThreads());
      cached = { available: true, addon, path: NATIVE_ADDON_PATH };
    } catch (e) {
      cached = {
        available: false,
        reason: `${NATIVE_ADDON_PATH} did not load: ${(e as Error).message}; rebuild it with \`${nativeBuildCommand()}\``,
        fix: nativeBuildCommand(),
      };
    }
  }
  return cached;
}
