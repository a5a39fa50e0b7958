import { MessageChannel } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { afterEach, describe, expect, it } from 'vitest';
import { transfer } from '../../src/actors/role.js';
import { thrown } from '../helpers/thrown.js';

// A role on one end of a channel, its controller's handle on the other (as a host lays it out).
const channels: MessageChannel[] = [];
function serve<T extends object>(role: T): Comlink.Remote<T> {
  const ch = new MessageChannel();
  channels.push(ch);
  Comlink.expose(role, nodeEndpoint(ch.port1));
  return Comlink.wrap<T>(nodeEndpoint(ch.port2));
}
afterEach(() => {
  for (const ch of channels.splice(0)) {
    ch.port1.close();
    ch.port2.close();
  }
});

describe('transfer', () => {
  it('moves the named buffers with a result: the sender gives them up, the receiver has them', async () => {
    const kept = new Float32Array([4, 5]);
    const sent: { a?: Float32Array; b?: Int32Array } = {};
    const remote = serve({
      scores() {
        sent.a = new Float32Array([1.5, -2, 3]);
        sent.b = new Int32Array([7, 8]);
        // The same buffer twice (a typed array and its buffer) is listed once.
        return transfer({ a: sent.a, b: sent.b, kept }, [sent.a, sent.a.buffer, sent.b]);
      },
    });
    const got = await remote.scores();
    expect(Array.from(got.a)).toEqual([1.5, -2, 3]);
    expect(Array.from(got.b)).toEqual([7, 8]);
    expect(Array.from(got.kept)).toEqual([4, 5]);
    expect(sent.a?.byteLength).toBe(0); // detached: moved, not copied
    expect(sent.b?.byteLength).toBe(0);
    expect(kept.byteLength).toBe(8); // not listed: copied
  });

  it('moves a call argument the same way', async () => {
    const remote = serve({ sum: (x: Float64Array) => x.reduce((s, v) => s + v, 0) });
    const x = new Float64Array([1, 2, 3.5]);
    expect(await remote.sum(transfer(x, [x]))).toBe(6.5);
    expect(x.byteLength).toBe(0);
  });

  it('refuses a SharedArrayBuffer, which is shared and cannot be moved', () => {
    const shared = new Float32Array(new SharedArrayBuffer(8));
    const err = thrown(() => transfer(shared, [shared]));
    expect(err.code).toBe('BAD_ARGUMENT');
    expect(err.message).toMatch(/SharedArrayBuffer is shared, not moved/);
  });
});
