import * as Comlink from 'comlink';
import { Supervisor } from '../../src/actors/supervisor.js';
import { PING } from './actor-role.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Round-trip latency of an actor call, bare and with a buffer, next to a memcpy: for a worker
 * thread (the buffer is transferred) and for a child process (`isolation: 'process'`: the same
 * call crosses the IPC channel, and the buffer is copied both ways), with the host's start time.
 */
export const actorsSuite: Suite = {
  name: 'actors',
  description:
    'actor call round trip (supervisor → worker thread or child process → back), with and without a buffer',
  async run({ quick, log }) {
    const sup = new Supervisor();
    const rows: Row[] = [];
    try {
      for (const isolation of ['thread', 'process'] as const) {
        const t0 = performance.now();
        const a = await sup.spawn(
          { name: `ping-${isolation}`, role: PING, args: {} },
          { runtime: { backend: 'cpu' }, isolation },
        );
        const startMs = performance.now() - t0;
        rows.push({
          figure: `${isolation}: start (spawn to ready, cpu backend)`,
          value: startMs * 1000,
          unit: 'µs',
          note: 'one start',
        });
        const calls = quick ? 300 : 3000;
        for (let i = 0; i < 200; i++) await a.call.ping();
        const lat: number[] = [];
        for (let i = 0; i < calls; i++) {
          const t1 = performance.now();
          await a.call.ping();
          lat.push(performance.now() - t1);
        }
        rows.push({
          figure: `${isolation}: call round trip (no payload)`,
          value: median(lat) * 1000,
          unit: 'µs',
          note: `median of ${calls}`,
        });
        log(
          `${isolation}: start ${startMs.toFixed(0)} ms, call round trip ${(median(lat) * 1000).toFixed(0)} µs`,
        );
        for (const mb of [1, 16]) {
          let buf: Float32Array = new Float32Array((mb * 2 ** 20) / 4).fill(1);
          const times: number[] = [];
          for (let i = 0; i < (quick ? 20 : isolation === 'process' && mb > 1 ? 20 : 100); i++) {
            const t1 = performance.now();
            buf = await a.call.bounce(Comlink.transfer(buf, [buf.buffer]));
            times.push(performance.now() - t1);
          }
          const ms = median(times);
          rows.push({
            figure: `${isolation}: round trip with ${mb} MB ${isolation === 'thread' ? 'transferred' : 'copied'}`,
            value: ms * 1000,
            unit: 'µs',
            note: `median; buffer moves both ways`,
          });
          log(`${isolation}: ${mb} MB round trip ${(ms * 1000).toFixed(0)} µs`);
        }
        await a.stop();
      }
      for (const mb of [1, 16]) {
        const src = new Uint8Array(mb * 2 ** 20).fill(1);
        const dst = new Uint8Array(mb * 2 ** 20);
        const copies: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t0 = performance.now();
          dst.set(src);
          copies.push(performance.now() - t0);
        }
        rows.push({
          figure: `memcpy of ${mb} MB (for scale)`,
          value: median(copies) * 1000,
          unit: 'µs',
          note: 'Uint8Array.set',
        });
      }
    } finally {
      await sup.shutdown();
    }
    const markdown = [
      '| figure | value | note |',
      '|---|---:|---|',
      ...rows.map((r) => `| ${r.figure} | ${r.value.toFixed(0)} ${r.unit} | ${r.note} |`),
    ].join('\n');
    return { rows, markdown };
  },
};
