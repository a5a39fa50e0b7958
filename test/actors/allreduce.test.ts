import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { chunkOf, createAllReduce } from '../../src/actors/allreduce.js';

/** The ESM build of tsx's loader API, which the fixture worker registers. */
function tsxApi(): string {
  const pkgJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
    exports: Record<string, { import: { default: string } }>;
  };
  return pathToFileURL(join(dirname(pkgJson), pkg.exports['./esm/api'].import.default)).href;
}

/** The float32 sum of the replicas' vectors, added in rank order from 0 (the documented order). */
function reference(vectors: Float32Array[]): Float32Array {
  const out = new Float32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < v.length; i++) out[i] += v[i];
  return out;
}

/** Values over many magnitudes, so that the order of the float32 adds shows in the bits. */
function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return ((s / 2147483648 - 0.5) * 10 ** ((s % 13) - 6)) as number;
  });
}

describe('AllReduce', () => {
  it('cuts n values into contiguous chunks that cover them once', () => {
    expect(chunkOf(10, 3, 0)).toEqual([0, 4]);
    expect(chunkOf(10, 3, 1)).toEqual([4, 8]);
    expect(chunkOf(10, 3, 2)).toEqual([8, 10]);
    expect(chunkOf(2, 3, 2)).toEqual([2, 2]); // fewer values than replicas: an empty chunk
  });

  it('gives every replica the rank-ordered float32 sum, bit for bit, call after call', async () => {
    const replicas = 3;
    const length = 1001; // not a multiple of 3; the second call sends fewer values
    const shared = createAllReduce(replicas, length);
    const calls = [length, 998, 2];
    const sent = Array.from({ length: replicas }, (_, r) =>
      calls.map((n, c) => values(n, 1 + r * 7 + c * 31)),
    );
    const module = new URL('../../src/actors/allreduce.ts', import.meta.url).href;
    const results = await Promise.all(
      sent.map(
        (vectors, rank) =>
          new Promise<Float32Array[]>((resolve, reject) => {
            const w = new Worker(new URL('./fixtures/allreduce-worker.mjs', import.meta.url), {
              workerData: { tsxApi: tsxApi(), module, shared, rank, vectors },
            });
            w.once('message', (m) => {
              resolve(m as Float32Array[]);
              void w.terminate();
            });
            w.once('error', reject);
          }),
      ),
    );
    for (const [c] of calls.entries()) {
      const want = reference(sent.map((v) => v[c]));
      for (const r of results) expect(Buffer.from(r[c].buffer)).toEqual(Buffer.from(want.buffer));
    }
    // the sums are not all equal to a different order's: the test can tell orders apart
    const reversed = reference(sent.map((v) => v[0]).reverse());
    expect(Buffer.from(reversed.buffer)).not.toEqual(Buffer.from(results[0][0].buffer));
  });
});
