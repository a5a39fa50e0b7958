import { z } from 'zod';
import { parseOptions, refuseUnknownKeys } from '../config/options.js';
import { rightPad } from '../data/batching/collate.js';
import { loadTokenizer } from '../data/tokenizer/io.js';
import type { TokenizerLike } from '../data/tokenizer/types.js';
import { TroupeError } from '../errors.js';
import * as tf from '../kernels/tf.js';
import { loadFrozen } from '../policy/bf16.js';
import type { CausalLM } from '../policy/model/causal-lm.js';
import { resolveModelSource } from '../policy/source.js';
import { defineSource } from './check.js';
import type { RewardBatch, RewardSource } from './types.js';

const MODEL_KEYS = ['name', 'path', 'batchSize', 'maxLength'] as const;
const modelSchema = z.strictObject(
  {
    /** Source name in logs and errors (default `reward-model`). */
    name: z.string().min(1, 'must be a non-empty string').default('reward-model'),
    /**
     * A reward model (HF layout with a `score` head, and its tokenizer.json): a model directory,
     * a LoRA checkpoint (its adapter merged in) or a run directory (its best checkpoint).
     */
    path: z.string({ error: 'must be a reward model directory' }).min(1, 'must not be empty'),
    /** Rows per forward pass. */
    batchSize: z.number().int('must be an integer').positive('must be > 0').default(16),
    /** Longest row in tokens (longer rows lose their start); default the model's maxPositions. */
    maxLength: z.number().int('must be an integer').positive('must be > 0').optional(),
  },
  { error: refuseUnknownKeys(MODEL_KEYS) },
);
export type RewardModelSourceOptions = z.input<typeof modelSchema>;

/** A reward model source; `load` reads the model now (otherwise the first score does). */
export interface RewardModelSource extends RewardSource {
  load(): Promise<void>;
}

interface Loaded {
  readonly model: CausalLM;
  readonly tokenizer: TokenizerLike;
  readonly maxLength: number;
  readonly padId: number;
}

async function loadRewardModel(
  path: string,
  maxLength: number | undefined,
  source: string,
): Promise<Loaded> {
  // A run directory → its checkpoint; a LoRA reward model → its base with the adapter merged.
  const resolved = await resolveModelSource(path, { field: `reward '${source}' path` });
  const [model, tokenizer] = await Promise.all([
    loadFrozen({ source: resolved }), // bf16 matrices under precision bf16, rounded as read
    loadTokenizer(resolved.tokenizerDir ?? resolved.dir),
  ]);
  if (!model.param('score.weight')) {
    model.dispose();
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${path}: not a reward model (its weights have no 'score.weight' head); train one with \`troupe rm\``,
      { details: { path, source } },
    );
  }
  const { vocabSize, maxPositions } = model.config;
  if (tokenizer.vocabSize > vocabSize) {
    model.dispose();
    throw new TroupeError(
      'BAD_CHECKPOINT',
      `${path}: the tokenizer has ${tokenizer.vocabSize} ids, the model's vocabulary only ${vocabSize}`,
      { details: { path, source } },
    );
  }
  if (maxLength !== undefined && maxLength > maxPositions) {
    model.dispose();
    throw new TroupeError(
      'BAD_ARGUMENT',
      `reward model '${source}' option 'maxLength': ${maxLength} is more than the model's maxPositions (${maxPositions})`,
      { details: { path, source } },
    );
  }
  return {
    model,
    tokenizer,
    maxLength: maxLength ?? maxPositions,
    padId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
  };
}

/**
 * A row's ids as the reward-model trainer (`troupe rm`, `tokenizePreference` on string rows)
 * built them: the prompt encoded with the tokenizer's special tokens (BOS), the completion
 * without, then EOS; cut from the left to `maxLength`.
 */
export function rewardModelIds(
  tokenizer: TokenizerLike,
  prompt: string,
  completion: string,
  maxLength: number,
): number[] {
  const ids = [
    ...tokenizer.encode(prompt),
    ...tokenizer.encode(completion, { addSpecialTokens: false }),
    ...(tokenizer.eosTokenId !== undefined ? [tokenizer.eosTokenId] : []),
  ];
  return ids.length > maxLength ? ids.slice(ids.length - maxLength) : ids;
}

async function scoreRows(m: Loaded, batch: RewardBatch, batchSize: number): Promise<Float32Array> {
  const rows = batch.completions.length;
  const out = new Float32Array(rows); // (B,)
  for (let lo = 0; lo < rows; lo += batchSize) {
    const hi = Math.min(lo + batchSize, rows);
    const ids: number[][] = [];
    for (let i = lo; i < hi; i++) {
      const row = rewardModelIds(m.tokenizer, batch.prompts[i], batch.completions[i], m.maxLength);
      if (row.length === 0) {
        throw new TroupeError(
          'BAD_REWARD',
          `row ${i} has no tokens (empty prompt and completion, and the tokenizer adds no BOS/EOS)`,
          { details: { row: i } },
        );
      }
      ids.push(row);
    }
    const tokens = rightPad(ids, m.padId);
    const s = tf.tidy(() => m.model.scores(m.model.forward(tokens), tokens)); // (b,)
    try {
      out.set((await s.data()) as Float32Array, lo);
    } finally {
      s.dispose();
    }
  }
  return out;
}

/**
 * A reward from a trained reward model (`troupe rm`): each row's prompt + completion, tokenised
 * as the trainer did, scored by the `score` head at the last token, in right-padded batches of
 * `batchSize`. The model and its tokenizer (from the same directory) load on the first score,
 * or on `load()`; a directory without a score head fails with BAD_CHECKPOINT.
 */
export function rewardModelSource(options: RewardModelSourceOptions): RewardModelSource {
  const o = parseOptions(modelSchema, options, 'rewardModelSource');
  let loading: Promise<Loaded> | undefined;
  const load = () => {
    if (!loading) {
      loading = loadRewardModel(o.path, o.maxLength, o.name);
      // A failed load (a missing file being written) is tried again by the next call.
      loading.catch(() => {
        loading = undefined;
      });
    }
    return loading;
  };
  const source = defineSource(o.name, async (batch) => {
    if (batch.completions.length === 0) return new Float32Array(0);
    return scoreRows(await load(), batch, o.batchSize);
  });
  return Object.freeze({
    ...source,
    load: async () => {
      try {
        await load();
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        throw new TroupeError(
          e instanceof TroupeError ? e.code : 'BAD_CHECKPOINT',
          `reward '${o.name}': ${message}`,
          {
            cause: e,
            details: { source: o.name },
          },
        );
      }
    },
  });
}
