import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { TroupeError } from '../errors.js';

/*
 * A constitution (Bai et al. 2022, "Constitutional AI", arXiv 2212.08073): the principles that
 * steer both halves of the method, in one YAML or JSON file (docs/cai.md describes every field;
 * data/cai/constitution.yaml is the one Troupe ships).
 *
 *   critiques    critique request + revision request pairs (SL-CAI, §3)
 *   comparisons  principles a feedback model compares two responses under (RL-CAI, §4)
 *   fewShot      worked examples of both, prepended to the requests
 *   feedback     the multiple-choice question's wording, its answer lead-in, chain of thought
 *   dialogue     how a conversation is written as plain text (Human: / Assistant:)
 *   stop         text that ends a generation (the next turn's marker)
 *   boilerplate  preambles stripped from the start of revisions ("Sure, here is a revision:")
 */

const text = z.string().trim().min(1, 'must be a non-empty string');

const critiqueSchema = z.strictObject({
  /** A short name, for records and metrics. */
  name: text.optional(),
  /** What the model is asked to find wrong with the last response. */
  critique: text,
  /** What the model is then asked to rewrite. */
  revision: text,
});

const revisionExampleSchema = z.strictObject({
  prompt: text,
  response: text,
  critiqueRequest: text,
  critique: text,
  revisionRequest: text,
  revision: text,
});

const feedbackExampleSchema = z.strictObject({
  /** The conversation (the human turn) the two responses answer. */
  prompt: text,
  principle: text,
  responseA: text,
  responseB: text,
  /** The better option's letter. */
  answer: text,
  /** A worked reasoning, shown in chain-of-thought mode. */
  reasoning: text.optional(),
});

export const constitutionSchema = z.strictObject({
  /** A name for the metadata of what the constitution labelled. */
  name: text.default('constitution'),
  dialogue: z
    .strictObject({
      human: text.default('Human:'),
      assistant: text.default('Assistant:'),
      /** Between turns. */
      separator: z.string().default('\n\n'),
      /** Between few-shot examples and the conversation. */
      exampleSeparator: z.string().default('\n\n-----\n\n'),
    })
    .prefault({}),
  critiques: z.array(critiqueSchema).min(1, 'needs at least one critique/revision pair'),
  comparisons: z.array(text).min(1, 'needs at least one comparison principle'),
  feedback: z
    .strictObject({
      /**
       * The question, with {conversation}, {principle}, {response_a} and {response_b} (each
       * required); the option letters come from `options`.
       */
      template: text.default(
        'Here is a conversation between a human and an AI assistant:\n{conversation}\n\n{principle}\n\nOptions:\n(A) {response_a}\n(B) {response_b}',
      ),
      /** The option letters, in the order of the responses. */
      options: z.tuple([text, text]).default(['A', 'B']),
      /** What precedes the option letter in the answer (completion models and Troupe models). */
      answer: z.string().default('\n\nThe answer is: ('),
      /** Asked of chat models instead (which cannot be handed the start of their answer). */
      chatInstruction: text.default('Answer with the letter of one option only: (A) or (B).'),
      /** Chain-of-thought mode: what opens the reasoning. */
      chainOfThought: text.default("\n\nLet's think step by step:"),
    })
    .prefault({}),
  fewShot: z
    .strictObject({
      revision: z.array(revisionExampleSchema).default([]),
      feedback: z.array(feedbackExampleSchema).default([]),
    })
    .prefault({}),
  stop: z.array(z.string().min(1, 'must not be empty')).default(['\n\nHuman:', '\n\n-----']),
  /**
   * Regular expressions (case-insensitive) of preambles a revision may start with; each match at
   * the start is removed, repeatedly, before the revision is kept as data.
   */
  boilerplate: z.array(z.string().min(1, 'must not be empty')).default([]),
});

export type Constitution = z.output<typeof constitutionSchema>;
export type CritiquePair = Constitution['critiques'][number];

const PLACEHOLDERS = ['{conversation}', '{principle}', '{response_a}', '{response_b}'] as const;

function refuse(file: string, field: string, message: string): TroupeError {
  return new TroupeError('BAD_ARGUMENT', `constitution ${file}: ${field}: ${message}`, {
    details: { file, field },
  });
}

/** A parsed object as a constitution: every error names the file and the field. */
export function parseConstitution(raw: unknown, file: string): Constitution {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw refuse(file, '(root)', 'expected a mapping with critiques, comparisons, …');
  }
  const r = constitutionSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const keys = (i as { keys?: string[] }).keys;
    const message =
      i.code === 'unrecognized_keys' && keys
        ? `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}`
        : i.message;
    const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : '';
    throw refuse(file, i.path.join('.') || '(root)', `${message}${more}`);
  }
  const c = r.data;
  for (const p of PLACEHOLDERS) {
    if (!c.feedback.template.includes(p)) {
      throw refuse(file, 'feedback.template', `must contain ${p}`);
    }
  }
  c.boilerplate.forEach((b, i) => {
    try {
      new RegExp(b, 'i');
    } catch (e) {
      throw refuse(file, `boilerplate.${i}`, `not a regular expression: ${(e as Error).message}`);
    }
  });
  const [a, b] = c.feedback.options;
  if (a === b) throw refuse(file, 'feedback.options', `the two letters are the same ('${a}')`);
  c.fewShot.feedback.forEach((ex, i) => {
    if (!c.feedback.options.includes(ex.answer)) {
      throw refuse(
        file,
        `fewShot.feedback.${i}.answer`,
        `'${ex.answer}' is not one of the options ${a}, ${b}`,
      );
    }
  });
  return c;
}

/** Read a constitution file: `.json` as JSON, anything else as YAML (a superset of JSON). */
export async function loadConstitution(file: string): Promise<Constitution> {
  let body: string;
  try {
    body = await readFile(file, 'utf8');
  } catch (e) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `constitution ${file}: cannot read it: ${(e as Error).message}`,
      { cause: e, details: { file } },
    );
  }
  let raw: unknown;
  try {
    raw = extname(file).toLowerCase() === '.json' ? JSON.parse(body) : parseYaml(body);
  } catch (e) {
    const kind = extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML';
    throw new TroupeError(
      'BAD_ARGUMENT',
      `constitution ${file}: not valid ${kind}: ${(e as Error).message}`,
      { cause: e, details: { file } },
    );
  }
  return parseConstitution(raw, file);
}

/** The preamble patterns of a constitution, compiled once. */
export function boilerplatePatterns(c: Constitution): RegExp[] {
  return c.boilerplate.map((b) => new RegExp(`^(?:${b})`, 'i'));
}
