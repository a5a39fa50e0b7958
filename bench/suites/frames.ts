import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import {
  packWeights,
  SharedWeights,
  type WeightState,
  weightManifest,
} from '../../src/actors/weights.js';
import { decodeExperience, type Experience, encodeExperience } from '../../src/rollout/index.js';
import type { Suite } from './types.js';

/**
 * What moving data between actors costs, each next to a plain memcpy of the same bytes into
 * memory already touched (`new Uint8Array(dst).set(new Uint8Array(src))`): (a) one PPO minibatch
 * through the msgpack codec, (b) that frame to a worker and back by transfer (and by structured
 * clone, for contrast), (c) a GPT-2-124M-sized weight sync by transfer, by SharedWeights, and
 * packed to bfloat16. Large buffers are allocated once and reused: first touch of fresh memory is
 * slow on these VMs (~0.25 GB/s) and would otherwise swamp the figures.
 */

type Row = {
  section: string;
  case: string;
  bytes: number;
  /** Mean ms per call, best round. */
  ms: number;
  /** Mean ms per call, slowest round (allocation and GC make some rounds much slower). */
  msSlowestRound: number;
  gbps: number;
  memcpyGbps: number;
};

/** Mean ms per call in the best and the slowest of `rounds` rounds. */
type Timing = { best: number; slowest: number };

/** Times `fn`: one warm-up call, then `rounds` rounds, each of at least `minMs` and `minCalls`. */
async function time(
  fn: () => unknown,
  opts: { rounds: number; minMs: number; minCalls?: number },
): Promise<Timing> {
  await fn();
  const t: Timing = { best: Number.POSITIVE_INFINITY, slowest: 0 };
  for (let r = 0; r < opts.rounds; r++) {
    let calls = 0;
    const t0 = performance.now();
    let elapsed = 0;
    do {
      await fn();
      calls++;
      elapsed = performance.now() - t0;
    } while (elapsed < opts.minMs || calls < (opts.minCalls ?? 1));
    t.best = Math.min(t.best, elapsed / calls);
    t.slowest = Math.max(t.slowest, elapsed / calls);
  }
  return t;
}

function memcpy(src: ArrayBufferLike, dst: ArrayBufferLike): void {
  new Uint8Array(dst).set(new Uint8Array(src));
}

/** Deterministic floats of every sign and a spread of exponents (a weight-like bit mix). */
function fillFloats(out: Float32Array, seed: number): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  let s = seed >>> 0;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = ((s & 0x80000000) | ((110 + (s % 16)) << 23) | ((s >>> 5) & 0x7fffff)) >>> 0;
  }
}

/** A PPO minibatch: B sequences of P prompt + A response tokens, every optional field present. */
function ppoBatch(B: number, P: number, A: number): Experience {
  const L = P + A;
  const sequences = new Int32Array(B * L);
  const attentionMask = new Uint8Array(B * L);
  const actionMask = new Uint8Array(B * A);
  for (let b = 0; b < B; b++) {
    const pads = b % P;
    const response = A - (b % A);
    for (let t = 0; t < L; t++) {
      const real = t < P ? t >= pads : t - P < response;
      attentionMask[b * L + t] = real ? 1 : 0;
      sequences[b * L + t] = real ? (b * 7919 + t * 104729) % 50257 : 0;
    }
    for (let j = 0; j < response; j++) actionMask[b * A + j] = 1;
  }
  const ba = (seed: number) => {
    const x = new Float32Array(B * A);
    fillFloats(x, seed);
    return x;
  };
  const perSample = (seed: number) => {
    const x = new Float32Array(B);
    fillFloats(x, seed);
    return x;
  };
  return {
    sequences,
    attentionMask,
    actionMask,
    actionLogProbs: ba(1),
    refLogProbs: ba(2),
    values: ba(3),
    returns: ba(4),
    advantages: ba(5),
    kl: ba(6),
    rewards: perSample(7),
    promptLength: P,
    shape: { batch: B, length: L, actions: A },
    info: { responseLength: perSample(8), 'reward/model': perSample(9) },
  };
}

/** GPT-2 small's tensors (wte tied to the LM head): 124,439,808 floats, or `layers` of them. */
function gpt2Shapes(layers: number): Array<[string, number[]]> {
  const d = 768;
  const shapes: Array<[string, number[]]> = [
    ['wte.weight', [50257, d]],
    ['wpe.weight', [1024, d]],
  ];
  for (let i = 0; i < layers; i++) {
    const h = `h.${i}.`;
    shapes.push(
      [`${h}ln_1.weight`, [d]],
      [`${h}ln_1.bias`, [d]],
      [`${h}attn.c_attn.weight`, [d, 3 * d]],
      [`${h}attn.c_attn.bias`, [3 * d]],
      [`${h}attn.c_proj.weight`, [d, d]],
      [`${h}attn.c_proj.bias`, [d]],
      [`${h}ln_2.weight`, [d]],
      [`${h}ln_2.bias`, [d]],
      [`${h}mlp.c_fc.weight`, [d, 4 * d]],
      [`${h}mlp.c_fc.bias`, [4 * d]],
      [`${h}mlp.c_proj.weight`, [4 * d, d]],
      [`${h}mlp.c_proj.bias`, [d]],
    );
  }
  shapes.push(['ln_f.weight', [d]], ['ln_f.bias', [d]]);
  return shapes;
}

/** A worker that sends back whatever arrives on its port (ArrayBuffers by transfer). */
function startEcho(): { port: MessagePort; stop: () => Promise<number> } {
  const { port1, port2 } = new MessageChannel();
  const code = `
    const { workerData } = require('node:worker_threads');
    const port = workerData.port;
    port.on('message', (m) => port.postMessage(m, m instanceof ArrayBuffer ? [m] : []));`;
  const worker = new Worker(code, {
    eval: true,
    workerData: { port: port2 },
    transferList: [port2],
  });
  worker.on('error', (e) => {
    throw e;
  });
  return {
    port: port1,
    stop: () => {
      port1.close();
      return worker.terminate();
    },
  };
}

function roundTrip<T>(port: MessagePort, message: T, transfer: boolean): Promise<T> {
  return new Promise((resolve) => {
    port.once('message', resolve);
    port.postMessage(message, transfer ? [message as ArrayBuffer] : []);
  });
}

export const framesSuite: Suite = {
  name: 'frames',
  description:
    'moving data between actors: Experience msgpack frames, transfer vs clone, weight sync by transfer / SharedWeights / bf16, each next to memcpy',
  async run({ quick, log }) {
    const rows: Row[] = [];
    const rounds = quick ? 2 : 5;
    const add = (section: string, name: string, bytes: number, t: Timing, memcpy: Timing) => {
      const row: Row = {
        section,
        case: name,
        bytes,
        ms: t.best,
        msSlowestRound: t.slowest,
        gbps: bytes / 1e6 / t.best,
        memcpyGbps: bytes / 1e6 / memcpy.best,
      };
      rows.push(row);
      log(
        `${section.padEnd(8)} ${name.padEnd(48)} ${(bytes / 2 ** 20).toFixed(1).padStart(7)} MiB ` +
          `${t.best.toFixed(3).padStart(9)} ms (slowest round ${t.slowest.toFixed(3)}) ` +
          `${row.gbps.toFixed(2).padStart(7)} GB/s (memcpy ${row.memcpyGbps.toFixed(2)})`,
      );
    };

    // (a) One PPO minibatch, B=64, P=A=512 (L=1024): sequences, 2 masks, 6 float [B, A] fields.
    const batch = ppoBatch(64, 512, 512);
    const frame = encodeExperience(batch);
    const frameBytes = frame.byteLength;
    const frameDst = new ArrayBuffer(frameBytes);
    const frameOpts = { rounds, minMs: quick ? 50 : 200, minCalls: 5 };
    const frameCopy = await time(() => memcpy(frame, frameDst), frameOpts);
    add('frame', 'memcpy into a reused buffer', frameBytes, frameCopy, frameCopy);
    add(
      'frame',
      'encodeExperience (B=64, L=1024, A=512)',
      frameBytes,
      await time(() => encodeExperience(batch), frameOpts),
      frameCopy,
    );
    add(
      'frame',
      'decodeExperience',
      frameBytes,
      await time(() => decodeExperience(frame), frameOpts),
      frameCopy,
    );
    // Encoding ends in a buffer of its own (and decoding in one per array): the floor is a copy
    // into new memory, fast when the allocator reuses freed pages, ~0.3 GB/s when it maps fresh ones.
    add(
      'frame',
      'memcpy into a new ArrayBuffer',
      frameBytes,
      await time(() => memcpy(frame, new ArrayBuffer(frameBytes)), frameOpts),
      frameCopy,
    );

    // (b) That frame to a worker and back: by transfer, and by structured clone for contrast.
    const echo = startEcho();
    let moving = encodeExperience(batch);
    add(
      'frame',
      'worker round trip, transfer',
      frameBytes,
      await time(async () => {
        moving = await roundTrip(echo.port, moving, true);
      }, frameOpts),
      frameCopy,
    );
    add(
      'frame',
      'worker round trip, structured clone',
      frameBytes,
      await time(() => roundTrip(echo.port, frame, false), frameOpts),
      frameCopy,
    );

    // (c) Weight sync of a GPT-2-124M-sized state dict (quick: 2 layers, ~46M floats).
    const shapes = gpt2Shapes(quick ? 2 : 12);
    const state: WeightState = new Map(
      shapes.map(([name, shape], i) => {
        const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
        fillFloats(data, i + 1);
        return [name, { shape, data }];
      }),
    );
    const manifest = weightManifest(state);
    const floats = manifest.reduce((n, e) => n + e.length, 0);
    const f32Bytes = floats * 4;
    log(
      `weights: ${shapes.length} tensors, ${floats.toLocaleString('en')} floats, ${(f32Bytes / 1e6).toFixed(0)} MB`,
    );
    const big = { rounds: quick ? 2 : 3, minMs: 0, minCalls: 1 };
    const packed = packWeights(state, { dtype: 'float32' }).buffer; // first touch, once
    const dst = new ArrayBuffer(f32Bytes);
    memcpy(packed, dst); // first touch, once
    const bigCopy = await time(() => memcpy(packed, dst), big);
    add('weights', 'memcpy into a reused buffer', f32Bytes, bigCopy, bigCopy);
    add(
      'weights',
      'packWeights f32, into a reused buffer',
      f32Bytes,
      await time(() => packWeights(state, { dtype: 'float32', into: packed }), big),
      bigCopy,
    );
    add(
      'weights',
      'packWeights f32, fresh buffer (first touch)',
      f32Bytes,
      await time(() => packWeights(state, { dtype: 'float32' }), { ...big, rounds: 1 }),
      bigCopy,
    );
    let weights = packed;
    add(
      'weights',
      'worker round trip, transfer',
      f32Bytes,
      await time(
        async () => {
          weights = await roundTrip(echo.port, weights, true);
        },
        { rounds, minMs: 50, minCalls: 5 },
      ),
      bigCopy,
    );
    await echo.stop();

    const shared = SharedWeights.create(manifest, 'float32');
    shared.write(state); // first touch, once
    const into = dst;
    add(
      'weights',
      'SharedWeights.write (state → shared)',
      f32Bytes,
      await time(() => shared.write(state), big),
      bigCopy,
    );
    add(
      'weights',
      'SharedWeights.read (shared → reused buffer)',
      f32Bytes,
      await time(() => shared.read({ into }), big),
      bigCopy,
    );
    add(
      'weights',
      'SharedWeights write + read',
      f32Bytes,
      await time(() => {
        shared.write(state);
        shared.read({ into });
      }, big),
      bigCopy,
    );

    const bf16 = packWeights(state, { dtype: 'bfloat16' }).buffer; // first touch, once
    add(
      'weights',
      'packWeights bf16 (GB/s of f32 read), reused',
      f32Bytes,
      await time(() => packWeights(state, { dtype: 'bfloat16', into: bf16 }), big),
      bigCopy,
    );
    const halfDst = new ArrayBuffer(bf16.byteLength);
    memcpy(bf16, halfDst);
    const halfCopy = await time(() => memcpy(bf16, halfDst), big);
    add(
      'weights',
      'memcpy of the bf16 bytes (half the size), reused',
      bf16.byteLength,
      halfCopy,
      halfCopy,
    );

    return { rows, markdown: table(rows) };
  },
};

function table(rows: Row[]): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(b < 2 ** 24 ? 2 : 0);
  const ms = (x: number) => (x < 1 ? x.toFixed(3) : x.toFixed(1));
  return [
    '| section | case | MiB | ms (best round) | ms (slowest round) | GB/s | memcpy GB/s | × memcpy time |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.section} | ${r.case} | ${mib(r.bytes)} | ${ms(r.ms)} | ${ms(r.msSlowestRound)} | ` +
        `${r.gbps.toFixed(2)} | ${r.memcpyGbps.toFixed(2)} | ${(r.memcpyGbps / r.gbps).toFixed(2)} |`,
    ),
  ].join('\n');
}
