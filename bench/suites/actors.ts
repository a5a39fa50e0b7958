import * as Comlink from 'comlink';
import { Supervisor } from '../../src/actors/supervisor.js';
import { PING } from './actor-role.js';
import type { Suite } from './types.js';

type Row = { figure: string; value: number; unit: string; note: string };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Round-trip latency of an actor call, bare and with a transferred buffer, next to a memcpy. */
export const actorsSuite: Suite = {
  name: 'actors',
  description:
    'actor call round trip (supervisor → worker → back), with and without a transferred buffer',
  async run({ quick, log }) {
    const sup = new Supervisor();
    const rows: Row[] = [];
    try {
      const a = await sup.spawn(
        { name: 'ping', role: PING, args: {} },
        { runtime: { backend: 'cpu' } },
      );
      const calls = quick ? 300 : 3000;
      for (let i = 0; i < 200; i++) await a.call.ping();
      const lat: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        await a.call.ping();
        lat.push(performance.now() - t0);
      }
      rows.push({
        figure: 'call round trip (no payload)',
        value: median(lat) * 1000,
        unit: 'µs',
        note: `median of ${calls}`,
      });
      log(`call round trip ${(median(lat) * 1000).toFixed(0)} µs`);
      for (const mb of [1, 16]) {
        let buf: Float32Array = new Float32Array((mb * 2 ** 20) / 4).fill(1);
        const times: number[] = [];
        for (let i = 0; i < (quick ? 20 : 100); i++) {
          const t0 = performance.now();
          buf = await a.call.bounce(Comlink.transfer(buf, [buf.buffer]));
          times.push(performance.now() - t0);
        }
        const ms = median(times);
        const src = new Uint8Array(mb * 2 ** 20).fill(1);
        const dst = new Uint8Array(mb * 2 ** 20);
        const copies: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t0 = performance.now();
          dst.set(src);
          copies.push(performance.now() - t0);
        }
        rows.push({
          figure: `round trip with ${mb} MB transferred`,
          value: ms * 1000,
          unit: 'µs',
          note: 'median; buffer moves both ways',
        });
        rows.push({
          figure: `memcpy of ${mb} MB (for scale)`,
          value: median(copies) * 1000,
          unit: 'µs',
          note: 'Uint8Array.set',
        });
        log(
          `${mb} MB transferred round trip ${(ms * 1000).toFixed(0)} µs; memcpy ${(median(copies) * 1000).toFixed(0)} µs`,
        );
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
