import { type ChatMessage, sameMessage } from '../messages.js';

/**
 * Split chosen and rejected that share their start into (prompt, chosen, rejected), as TRL's
 * `extract_prompt` does: conversations are split before the first message that differs; strings
 * before the first character that differs, with a space just before it moved to the replies.
 * Returns a description of the problem when there is no shared start or no difference.
 */
export function extractPrompt(
  chosen: string | readonly ChatMessage[],
  rejected: string | readonly ChatMessage[],
):
  | { conversational: false; prompt: string; chosen: string; rejected: string }
  | { conversational: true; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] }
  | string {
  if (typeof chosen === 'string' && typeof rejected === 'string') {
    const n = Math.min(chosen.length, rejected.length);
    let i = 0;
    while (i < n && chosen[i] === rejected[i]) i++;
    if (i === chosen.length && i === rejected.length) return 'chosen and rejected are identical';
    if (i === chosen.length || i === rejected.length) {
      return 'one of chosen and rejected is the start of the other, so one has no reply';
    }
    if (i > 0 && chosen[i - 1] === ' ') i--;
    if (i === 0) return 'chosen and rejected share no prompt';
    return {
      conversational: false,
      prompt: chosen.slice(0, i),
      chosen: chosen.slice(i),
      rejected: rejected.slice(i),
    };
  }
  if (typeof chosen === 'string' || typeof rejected === 'string') {
    return 'chosen and rejected are not both strings or both lists of messages';
  }
  const n = Math.min(chosen.length, rejected.length);
  let i = 0;
  while (i < n && sameMessage(chosen[i], rejected[i])) i++;
  if (i === chosen.length && i === rejected.length) return 'chosen and rejected are identical';
  if (i === 0) return 'chosen and rejected share no prompt (their first messages differ)';
  if (i === chosen.length || i === rejected.length) {
    return 'one of chosen and rejected is the start of the other, so one has no reply';
  }
  return {
    conversational: true,
    prompt: chosen.slice(0, i),
    chosen: chosen.slice(i),
    rejected: rejected.slice(i),
  };
}
