import type { Endpoint } from 'comlink';

/** A comlink listener, as comlink passes it (a function or an object with `handleEvent`). */
type Listener = ((ev: { data: unknown }) => void) | { handleEvent(ev: { data: unknown }): void };

/**
 * Comlink endpoints for several roles over one message channel that is not a MessagePort (a
 * process's IPC channel): each role's messages are tagged with its name on the way out, and
 * handed to that role's listeners on the way in. Used on both sides of a process host.
 */
export class RoleChannels {
  private readonly listeners = new Map<string, Set<Listener>>();

  /** `post(role, data)` sends one of role's comlink messages (it may throw: the call fails). */
  constructor(private readonly post: (role: string, data: unknown) => void) {}

  /** Role `name`'s endpoint; `close` drops its listeners, so later messages for it are ignored. */
  endpoint(name: string): Endpoint & { close(): void } {
    const set = new Set<Listener>();
    this.listeners.set(name, set);
    const endpoint = {
      postMessage: (data: unknown) => this.post(name, data),
      addEventListener: (_type: string, l: Listener) => {
        set.add(l);
      },
      removeEventListener: (_type: string, l: Listener) => {
        set.delete(l);
      },
      close: () => {
        set.clear();
        if (this.listeners.get(name) === set) this.listeners.delete(name);
      },
    };
    return endpoint as unknown as Endpoint & { close(): void };
  }

  /** Hand an incoming message to role `name`'s listeners (none, once it is closed). */
  deliver(name: string, data: unknown): void {
    for (const l of this.listeners.get(name) ?? []) {
      if (typeof l === 'function') l({ data });
      else l.handleEvent({ data });
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
