import { TroupeError } from '../errors.js';
import { serializeError } from './errors.js';
import { boot, type HostIO } from './host.js';
import { RoleChannels } from './ipc.js';
import type { ControlMessage, HostCommand, ProcessEnvelope } from './protocol.js';

/**
 * The child side of a process host: the actor host over the IPC channel the controller forked
 * it with. Every envelope is tagged (boot, call for a role, command); a role's endpoint passes
 * its comlink messages through. The child ends itself when the channel closes (the controller
 * stopped it or died), and reports an uncaught error before it exits.
 */
if (!process.send) {
  throw new TroupeError('ACTOR_START_FAILED', 'process-entry runs only as a forked actor process');
}
const post = (e: ProcessEnvelope, then?: () => void) => {
  if (!process.connected) return;
  process.send!(e, undefined, {}, () => then?.());
};
const where = `process ${process.pid}`;
const commandListeners: Array<(c: HostCommand) => void> = [];
let host = '';
let busyUs = 0;
const channels = new RoleChannels((role, data) => {
  // The in-method time rides on the answer, so the controller has counted it on settling.
  const busy = busyUs;
  busyUs = 0;
  post({ kind: 'call', role, data, busyUs: busy > 0 ? busy : undefined });
});

const io: HostIO = {
  isolation: 'process',
  where,
  endpoint: (name) => channels.endpoint(name),
  send: (m: ControlMessage) => post({ kind: 'control', message: m }),
  onCommand: (listener) => commandListeners.push(listener),
  addBusy: (us) => {
    busyUs += us;
  },
};

process.on('message', (e: ProcessEnvelope) => {
  if (e.kind === 'boot') {
    host = e.boot.thread;
    void boot(e.boot, io);
  } else if (e.kind === 'call') {
    channels.deliver(e.role, e.data);
  } else if (e.kind === 'command') {
    for (const l of commandListeners) l(e.command);
  }
});
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', (e) => {
  const exit = () => process.exit(1);
  setTimeout(exit, 1_000).unref();
  post(
    { kind: 'control', message: { type: 'fatal', error: serializeError(e, host, 0, where) } },
    exit,
  );
});
