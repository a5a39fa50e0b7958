import type { ChatMessage } from '../data/messages.js';
import type { Constitution } from './constitution.js';

/*
 * Conversations as the CAI stages build them, and how they become text: the paper's plain
 * "Human: … / Assistant: …" format (a completion endpoint or a Troupe model without a chat
 * template), or chat messages. Pure functions.
 */

export type Turn = Pick<ChatMessage, 'role' | 'content'>;

/** `Human: …\n\nAssistant: …` for the turns; with `open`, a trailing `Assistant:` to continue. */
export function renderText(
  c: Constitution['dialogue'],
  turns: readonly Turn[],
  open: boolean,
): string {
  const lines = turns.map((t) =>
    t.role === 'assistant'
      ? `${c.assistant} ${t.content}`
      : t.role === 'system'
        ? t.content
        : `${c.human} ${t.content}`,
  );
  if (open) lines.push(c.assistant);
  return lines.join(c.separator);
}

/** The text before the first stop sequence (all of it when none occurs), trimmed. */
export function cutAtStop(text: string, stop: readonly string[]): string {
  let end = text.length;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && i < end) end = i;
  }
  return text.slice(0, end).trim();
}

/**
 * A revision without its preamble: each pattern matching at the start is removed, again and
 * again until none matches ("Sure! Here is a revised response: …" → "…"). `removed` is the text
 * taken off ('' when none was).
 */
export function stripBoilerplate(
  text: string,
  patterns: readonly RegExp[],
): { text: string; removed: string } {
  let rest = text.trim();
  let removed = '';
  for (let changed = true; changed && rest.length > 0; ) {
    changed = false;
    for (const p of patterns) {
      const m = p.exec(rest);
      if (m && m.index === 0 && m[0].length > 0) {
        removed += m[0];
        rest = rest.slice(m[0].length).trimStart();
        changed = true;
      }
    }
  }
  // A quoted revision ("…") loses its quotes once its preamble has gone.
  if (removed && /^["“].*["”]$/s.test(rest)) rest = rest.slice(1, -1).trim();
  return { text: rest, removed: removed.trim() };
}

/** The prompt of a row as turns: a string is one human turn; messages are kept as they are. */
export function promptTurns(prompt: string | readonly ChatMessage[]): Turn[] {
  return typeof prompt === 'string'
    ? [{ role: 'user', content: prompt }]
    : prompt.map((m) => ({ role: m.role, content: m.content }));
}

/** Fill `{name}` placeholders (each occurrence) from `values`. */
export function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (all, k: string) => values[k] ?? all);
}
