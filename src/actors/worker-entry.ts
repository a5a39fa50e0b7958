import { workerData } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { boot, type HostIO } from './host.js';
import type { ControlMessage, HostCommand } from './protocol.js';
import type { ThreadBootData } from './spawn.js';

const data = workerData as ThreadBootData;
const busy = data.busy ? new BigInt64Array(data.busy, 0, 1) : undefined;
const ports = new Map(data.roles.map((r) => [r.name, r.port]));

const io: HostIO = {
  isolation: 'thread',
  where: 'worker thread',
  endpoint: (name) => {
    const port = ports.get(name)!;
    return Object.assign(nodeEndpoint(port), { close: () => port.close() });
  },
  send: (m: ControlMessage) => data.control.postMessage(m),
  onCommand: (listener) => data.control.on('message', (c: HostCommand) => listener(c)),
  addBusy: (us) => {
    if (busy) Atomics.add(busy, 0, BigInt(us));
  },
};

await boot({ thread: data.thread, runtime: data.runtime, roles: data.roles }, io);
