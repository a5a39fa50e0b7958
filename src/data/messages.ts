/**
 * Chat messages: the `{ role, content }` records of the `messages` convention (OpenAI, Hugging Face,
 * TRL), checked once where they enter Troupe.
 */
export const ROLES = ['system', 'user', 'assistant', 'tool'] as const;
export type Role = (typeof ROLES)[number];

/**
 * One turn of a conversation. Fields beyond `role` and `content` (`tool_calls`, `name`,
 * `reasoning_content`, …) are kept and reach the chat template unchanged.
 */
export interface ChatMessage {
  readonly role: Role;
  readonly content: string;
  readonly [field: string]: unknown;
}

export type Conversation = readonly ChatMessage[];

/**
 * What is wrong with `value` as a conversation, or undefined when it is one: a non-empty array of
 * objects with a known `role` and string `content`. The answer names the message index, so that
 * callers can prefix their own location (a file and line, an argument name).
 */
export function conversationProblem(value: unknown): string | undefined {
  if (!Array.isArray(value))
    return `expected a list of {role, content} messages, got ${kind(value)}`;
  if (value.length === 0) return 'expected at least one message, got an empty list';
  for (let i = 0; i < value.length; i++) {
    const m = value[i] as unknown;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      return `message ${i}: expected an object {role, content}, got ${kind(m)}`;
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
      return `message ${i}: 'role' must be one of ${ROLES.join(', ')}, got ${show(role)}`;
    }
    if (typeof content !== 'string') {
      return `message ${i} (${role}): 'content' must be a string, got ${kind(content)}`;
    }
  }
  return undefined;
}

/** True when `value` is a valid conversation (see `conversationProblem`). */
export function isConversation(value: unknown): value is ChatMessage[] {
  return conversationProblem(value) === undefined;
}

/** Two messages are the same turn when every field is equal (deep, JSON-like values). */
export function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  return deepEqual(a, b);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/** A short description of a value's type for error messages: `a number (3)`, `null`, `a list`. */
export function kind(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return `a string (${show(value)})`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `a ${typeof value} (${String(value)})`;
    case 'object':
      return 'an object';
    default:
      return `a ${typeof value}`;
  }
}

/** A value quoted for an error message, cut to 40 characters. */
export function show(value: unknown): string {
  const s = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
