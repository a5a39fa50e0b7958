import { join } from 'node:path';
import { type SequenceConfig, sequenceProblem } from '../config/positions.js';
import type { LmConfig } from '../config/schema.js';
import type { Example } from '../data/datasets/index.js';
import {
  type BpeTokenizer,
  loadTokenizer,
  saveTokenizer,
  trainBpe,
} from '../data/tokenizer/index.js';
import { TroupeError } from '../errors.js';
import { freshConfig } from '../policy/checkpoint/hf-config.js';
import { gpt2Config, llamaConfig, type ModelConfig } from '../policy/config.js';
import { readModelConfig } from '../policy/io.js';
import { positionLimit } from '../policy/model/rope.js';
import type { ModelSource } from '../policy/source.js';
import type { RunDir } from '../train/run-dir.js';
import { openModelSource } from './common.js';
import type { TrainEvents } from './lm.js';

/*
 * What every trainer settles before it starts an actor: the start model (`model.path`
 * resolved), the run's tokenizer (saved in the run, so a resume uses the same one) and the model
 * config, its positions checked against the run's longest row.
 */

/** The tokenizer of a run: saved in the run directory, so a resume uses exactly the same one. */
export async function runTokenizer(
  config: Pick<LmConfig, 'model'>,
  run: Pick<RunDir, 'dir' | 'resumedFrom'>,
  texts: () => string[],
  source?: ModelSource,
): Promise<BpeTokenizer> {
  const saved = join(run.dir, 'tokenizer');
  if (run.resumedFrom) return loadTokenizer(saved);
  const spec = config.model.tokenizer;
  let tok: BpeTokenizer;
  if (source) tok = await loadTokenizer(typeof spec === 'string' ? spec : tokenizerOf(source));
  else if (typeof spec === 'string') tok = await loadTokenizer(spec);
  else if (spec) {
    tok = trainBpe(texts(), {
      vocabSize: spec.train.vocabSize,
      minFrequency: spec.train.minFrequency,
      specialTokens: ['<|endoftext|>', '<|pad|>', '<|im_start|>', '<|im_end|>'],
      eosToken: '<|endoftext|>',
      padToken: '<|pad|>',
    });
  } else throw new TroupeError('BAD_ARGUMENT', 'model.tokenizer is required for a fresh model');
  await saveTokenizer(saved, tok);
  return tok;
}

/** The directory of a model source's tokenizer; refused by name when it has none. */
function tokenizerOf(source: ModelSource): string {
  if (source.tokenizerDir) return source.tokenizerDir;
  throw new TroupeError(
    'BAD_ARGUMENT',
    `model.path: ${source.dir} has no tokenizer.json (nor has its base); set model.tokenizer to one`,
    { details: { field: 'model.path', path: source.dir } },
  );
}

/**
 * The model config: from `model.init` (vocabulary from the tokenizer) or the start model, whose
 * positions are checked against the run's longest row here, before any actor starts (a fresh
 * model's were checked at config load; see config/positions.ts).
 */
export async function modelConfig(
  config: Pick<LmConfig, 'model'> & SequenceConfig,
  tok: BpeTokenizer,
  source?: ModelSource,
): Promise<ModelConfig> {
  if (source) {
    const c = await readModelConfig(source);
    const problem = sequenceProblem(
      config,
      positionLimit(c),
      `the model at model.path (${source.dir})`,
    );
    if (problem) {
      throw new TroupeError('BAD_ARGUMENT', `${problem.path.join('.')}: ${problem.message}`, {
        details: {
          field: problem.path.join('.'),
          modelPath: source.dir,
          positions: positionLimit(c),
        },
      });
    }
    return c;
  }
  const i = config.model.init!;
  const common = {
    vocabSize: tok.vocabSize,
    hidden: i.hidden,
    layers: i.layers,
    heads: i.heads,
    maxPositions: i.maxPositions,
    eosTokenId: tok.eosTokenId,
    padTokenId: tok.padTokenId,
    bosTokenId: tok.bosTokenId,
  };
  const intermediate = i.intermediate ?? Math.ceil((8 * i.hidden) / 3 / 64) * 64;
  if (i.family === 'gpt2')
    return gpt2Config({ ...common, ...(i.intermediate ? { intermediate: i.intermediate } : {}) });
  if (i.family === 'llama')
    return llamaConfig({
      ...common,
      kvHeads: i.kvHeads ?? i.heads,
      intermediate,
      headDim: i.headDim ?? i.hidden / i.heads,
    });
  return freshConfig(i.family === 'gemma3' ? 'gemma3_text' : i.family, {
    ...common,
    kvHeads: i.kvHeads,
    headDim: i.headDim,
    intermediate,
  });
}

export function textOf(e: Example): string[] {
  switch (e.kind) {
    case 'text':
      return [e.text];
    case 'completion':
      return [
        typeof e.prompt === 'string' ? e.prompt : e.prompt.map((m) => m.content).join('\n'),
        typeof e.completion === 'string'
          ? e.completion
          : e.completion.map((m) => m.content).join('\n'),
      ];
    case 'messages':
      return e.messages.map((m) => m.content);
    case 'preference':
      return [e.prompt, e.chosen, e.rejected].map((x) =>
        typeof x === 'string' ? x : x.map((m) => m.content).join('\n'),
      );
    default:
      return [];
  }
}

/**
 * What a trainer settles before its actors start, in this order: the start model of `model.path`
 * (announced), the run's tokenizer (trained on `texts` when the config asks for a new one) and the
 * model config, its positions checked against the run's longest row.
 */
export async function setupModel(
  config: Pick<LmConfig, 'model'> & SequenceConfig,
  run: RunDir,
  ev: Pick<TrainEvents, 'onLog'>,
  texts: () => string[],
): Promise<{ source: ModelSource | undefined; tok: BpeTokenizer; mconfig: ModelConfig }> {
  const source = await startSource(config, run, ev);
  const tok = await runTokenizer(config, run, texts, source);
  const mconfig = await modelConfig(config, tok, source);
  return { source, tok, mconfig };
}

/** The start model of `model.path`, resolved and announced; undefined for `model.init`. */
export async function startSource(
  config: Pick<LmConfig, 'model'>,
  run: RunDir,
  ev: Pick<TrainEvents, 'onLog'>,
): Promise<ModelSource | undefined> {
  if (!config.model.path) return undefined;
  return openModelSource(run, config.model.path, 'model.path', {
    onLog: ev.onLog,
    lora: config.model.lora,
  });
}
