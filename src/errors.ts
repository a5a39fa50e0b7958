/**
 * Troupe's error type. Every error Troupe throws on purpose is a `TroupeError` with a stable
 * `code`, so callers (and the actor runtime, when an error crosses a thread) can branch on it
 * without parsing messages. `details` is plain data: safe to log, serialise and send.
 */
export type ErrorCode =
  | 'BACKEND_UNAVAILABLE'
  | 'BAD_DEVICE'
  | 'BAD_ARGUMENT'
  /** A checkpoint file or directory is malformed (the message names the file and the tensor/field). */
  | 'BAD_CHECKPOINT'
  /** A data file or one of its rows is malformed (the message names the file, the line or row, and the column). */
  | 'BAD_DATA'
  /** Bytes that are not a message frame, or a frame of a version or kind the reader does not know. */
  | 'BAD_FRAME'
  /** A reward source returned the wrong count, a non-number, NaN or ±Inf, or threw (the message names the source and the first bad row). */
  | 'BAD_REWARD'
  | 'SHAPE_MISMATCH'
  | 'UNKNOWN_NAME'
  /** Well-formed input that asks for something Troupe does not implement (yet). */
  | 'UNSUPPORTED'
  /** An actor's thread did not start, or not within its start timeout. */
  | 'ACTOR_START_FAILED'
  /** An actor's thread died (error or exit) while calls were pending. */
  | 'ACTOR_CRASHED'
  /** An actor call did not answer within its timeout. */
  | 'ACTOR_TIMEOUT'
  /** A call to an actor that was shut down, or that used up its restarts. */
  | 'ACTOR_STOPPED'
  /** A stateless pool task failed, timed out or was aborted (the message names the task). */
  | 'TASK_FAILED'
  | 'TASK_TIMEOUT'
  | 'TASK_ABORTED'
  /** A topology spec is invalid (the message names the field). */
  | 'BAD_TOPOLOGY'
  /** A model endpoint (OpenAI-compatible HTTP server) failed or answered malformed (the message names the URL and status). */
  | 'ENDPOINT_FAILED'
  /** Memory ran out, or would: the message says how much was needed, how much there is, and what to change. */
  | 'OUT_OF_MEMORY';

export class TroupeError extends Error {
  override readonly name = 'TroupeError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** True when `e` is a TroupeError with the given code. */
export function hasCode(e: unknown, code: ErrorCode): e is TroupeError {
  return e instanceof TroupeError && e.code === code;
}

/**
 * Lookup in a name → value registry that fails with the list of valid names
 * (`Unknown kl estimator 'k4'. Known: k1, k2, k3.`).
 */
export function lookup<T>(registry: ReadonlyMap<string, T>, name: string, what: string): T {
  const found = registry.get(name);
  if (found === undefined) {
    throw new TroupeError(
      'UNKNOWN_NAME',
      `Unknown ${what} '${name}'. Known: ${[...registry.keys()].join(', ')}.`,
      { details: { what, name, known: [...registry.keys()] } },
    );
  }
  return found;
}
