import type { AddedToken } from './added-tokens.js';
import { bad, isObj, type Obj, type Where } from './json.js';
import { readModel } from './models/index.js';
import type { SpecialTokensConfig, TokenizerSpec } from './spec.js';

/**
 * Hugging Face tokenizer.json (+ tokenizer_config.json) → `TokenizerSpec`. The model's tables
 * are read into typed values here; the pipeline sections are kept as JSON and built (and
 * validated: an unknown type fails naming the section and listing the supported ones) when a
 * `Tokenizer` is made from the spec.
 */

function parseAddedTokens(v: unknown, w: Where): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(w, 'added_tokens must be an array');
  return v.map((t, i) => {
    if (!isObj(t) || !Number.isInteger(t['id']) || typeof t['content'] !== 'string') {
      throw bad(w, `added_tokens[${i}] needs an integer id and a string content`);
    }
    return {
      id: t['id'] as number,
      content: t['content'],
      special: t['special'] === true,
      singleWord: t['single_word'] === true,
      lstrip: t['lstrip'] === true,
      rstrip: t['rstrip'] === true,
      normalized: t['normalized'] === true,
    };
  });
}

/** A token field of tokenizer_config.json: a string, or an AddedToken object with content. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

export function parseConfig(config: Obj): SpecialTokensConfig {
  let chat = config['chat_template'];
  if (Array.isArray(chat)) {
    // A list of named templates: the 'default' one is what apply_chat_template uses.
    const named = chat.find((c) => isObj(c) && c['name'] === 'default');
    chat = isObj(named) ? named['template'] : undefined;
  }
  return {
    bosToken: tokenName(config['bos_token']),
    eosToken: tokenName(config['eos_token']),
    padToken: tokenName(config['pad_token']),
    addBosToken: config['add_bos_token'] === true,
    addEosToken: config['add_eos_token'] === true,
    chatTemplate: typeof chat === 'string' ? chat : undefined,
  };
}

/** A parsed tokenizer.json (and tokenizer_config.json, if any) → spec. `where` names the file. */
export function specFromJson(json: unknown, config: unknown, where: string): TokenizerSpec {
  const top: Where = { file: where, path: '(top level)' };
  if (!isObj(json)) throw bad(top, 'not a JSON object');
  if (config !== undefined && !isObj(config)) throw bad(top, 'tokenizer_config is not an object');
  if (!isObj(json['model'])) throw bad({ file: where, path: 'model' }, 'model section missing');
  const {
    model,
    added_tokens: addedTokens,
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: postProcessor,
    decoder,
    ...extra
  } = json;
  return {
    model: readModel(model, { file: where, path: 'model' }),
    addedTokens: parseAddedTokens(addedTokens, { file: where, path: 'added_tokens' }),
    normalizer: normalizer ?? null,
    preTokenizer: preTokenizer ?? null,
    postProcessor: postProcessor ?? null,
    decoder: decoder ?? null,
    special: parseConfig(config ?? {}),
    extra,
    config: config ?? {},
    source: where,
  };
}
