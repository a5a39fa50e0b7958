import { type RoleFactory, roleRef } from '../../src/actors/role.js';

/** The smallest useful role: what an actor call costs with nothing else in the way. */
export interface PingRole {
  ping(): Promise<number>;
  /** Returns the buffer it was sent (transferred both ways). */
  bounce(buf: Float32Array): Promise<Float32Array>;
}

export const createPing: RoleFactory<PingRole, Record<string, never>> = async () => {
  const { transfer } = await import('comlink');
  let n = 0;
  return {
    ping: async () => ++n,
    bounce: async (buf) => transfer(buf, [buf.buffer]),
  };
};

export const PING = roleRef<PingRole, Record<string, never>>(import.meta.url, 'createPing');
