import type { Constitution, CritiquePair } from './constitution.js';
import { fill, renderText, type Turn } from './dialogue.js';
import type { ModelPrompt } from './model.js';

/*
 * The requests of both CAI stages as model prompts (pure): the response to a prompt, a critique
 * and a revision of it (SL-CAI), and the multiple-choice feedback question (RL-CAI), each with
 * its few-shot examples, in text and chat form.
 */

/** A conversation to continue, after `shots` of the constitution's revision examples. */
export function conversationPrompt(
  c: Constitution,
  turns: readonly Turn[],
  shots: number,
): ModelPrompt {
  const examples = c.fewShot.revision.slice(0, shots).map((e): Turn[] => [
    { role: 'user', content: e.prompt },
    { role: 'assistant', content: e.response },
    { role: 'user', content: e.critiqueRequest },
    { role: 'assistant', content: e.critique },
    { role: 'user', content: e.revisionRequest },
    { role: 'assistant', content: e.revision },
  ]);
  const text = [
    ...examples.map((t) => renderText(c.dialogue, t, false)),
    renderText(c.dialogue, turns, true),
  ].join(c.dialogue.exampleSeparator);
  return { messages: [...examples.flat(), ...turns], text };
}

/** The turns that ask for a critique of `response` under `pair`. */
export function critiqueTurns(
  turns: readonly Turn[],
  response: string,
  pair: CritiquePair,
): Turn[] {
  return [
    ...turns,
    { role: 'assistant', content: response },
    { role: 'user', content: pair.critique },
  ];
}

/** The turns that then ask for a revision answering `critique`. */
export function revisionTurns(
  turns: readonly Turn[],
  response: string,
  pair: CritiquePair,
  critique: string,
): Turn[] {
  return [
    ...critiqueTurns(turns, response, pair),
    { role: 'assistant', content: critique },
    { role: 'user', content: pair.revision },
  ];
}

export interface Question {
  readonly turns: readonly Turn[];
  readonly principle: string;
  /** The responses in the order shown: (A), (B). */
  readonly a: string;
  readonly b: string;
}

function questionText(c: Constitution, q: Question): string {
  return fill(c.feedback.template, {
    conversation: renderText(c.dialogue, q.turns, false),
    principle: q.principle,
    response_a: q.a,
    response_b: q.b,
  });
}

function feedbackShots(c: Constitution, shots: number, cot: boolean): string[] {
  return c.fewShot.feedback.slice(0, shots).map((e) => {
    const q = questionText(c, {
      turns: [{ role: 'user', content: e.prompt }],
      principle: e.principle,
      a: e.responseA,
      b: e.responseB,
    });
    const why = cot && e.reasoning ? `${c.feedback.chainOfThought} ${e.reasoning}` : '';
    return `${q}${why}${c.feedback.answer}${e.answer})`;
  });
}

/**
 * The feedback question up to where the option letter goes (text) or with the instruction to
 * answer with one (chat); in chain-of-thought mode, with the reasoning written so far.
 */
export function feedbackPrompt(
  c: Constitution,
  q: Question,
  o: { readonly shots: number; readonly reasoning?: string },
): ModelPrompt {
  const cot = o.reasoning !== undefined;
  const shots = feedbackShots(c, o.shots, cot);
  const body = questionText(c, q);
  const lead = cot ? `${c.feedback.chainOfThought} ${o.reasoning}` : '';
  const text = [...shots, `${body}${lead}${c.feedback.answer}`].join(c.dialogue.exampleSeparator);
  const ask = [...shots, body].join(c.dialogue.exampleSeparator);
  const messages: Turn[] = cot
    ? [
        { role: 'user', content: `${ask}${c.feedback.chainOfThought}` },
        { role: 'assistant', content: o.reasoning! },
        { role: 'user', content: c.feedback.chatInstruction },
      ]
    : [{ role: 'user', content: `${ask}\n\n${c.feedback.chatInstruction}` }];
  return { messages, text, plain: true };
}

/** Chain-of-thought mode's first request: the question, then the lead-in to the reasoning. */
export function reasoningPrompt(c: Constitution, q: Question, shots: number): ModelPrompt {
  const ex = feedbackShots(c, shots, true);
  const body = `${questionText(c, q)}${c.feedback.chainOfThought}`;
  const text = [...ex, body].join(c.dialogue.exampleSeparator);
  return { messages: [{ role: 'user', content: text }], text, plain: true };
}
