import { TroupeError } from '../../errors.js';
import type { AddedToken } from './added-tokens.js';
import { PATTERNS } from './pattern.js';
import type { BpeSpec, SpecialTokensConfig, Template, TemplatePiece } from './spec.js';

/**
 * Hugging Face tokenizer.json (+ tokenizer_config.json) ↔ `BpeSpec`. Only what a byte-level
 * BPE needs is accepted; anything else fails with UNSUPPORTED naming the section and type, so a
 * tokenizer is never silently run with a step missing.
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(where: string, msg: string): TroupeError {
  return new TroupeError('BAD_CHECKPOINT', `${where}: ${msg}`, { details: { where } });
}

function unsupported(where: string, section: string, what: string): TroupeError {
  return new TroupeError(
    'UNSUPPORTED',
    `${where}: ${section} ${what} is not supported (Troupe loads byte-level BPE tokenizers)`,
    { details: { where, section, what } },
  );
}

const typeOf = (v: Obj) => JSON.stringify(v['type']);

function parseNormalizer(v: unknown, where: string): 'NFC' | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v)) throw bad(where, 'normalizer must be an object or null');
  if (v['type'] === 'NFC') return 'NFC';
  if (v['type'] === 'Sequence' && Array.isArray(v['normalizers'])) {
    const steps = (v['normalizers'] as unknown[]).map((n) => parseNormalizer(n, where));
    if (steps.length <= 1) return steps[0] ?? null;
  }
  throw unsupported(where, 'normalizer', `of type ${typeOf(v)} (only null and NFC are)`);
}

/** Flattens the pre-tokenizer into regexes applied in turn, ending in one ByteLevel step. */
function parsePreTokenizer(
  v: unknown,
  where: string,
): { patterns: string[]; addPrefixSpace: boolean } {
  const steps: Obj[] = [];
  const flatten = (p: unknown) => {
    if (!isObj(p)) throw bad(where, 'pre_tokenizer entries must be objects');
    if (p['type'] === 'Sequence' && Array.isArray(p['pretokenizers'])) {
      (p['pretokenizers'] as unknown[]).forEach(flatten);
    } else steps.push(p);
  };
  if (v === null || v === undefined) throw unsupported(where, 'pre_tokenizer', 'null');
  flatten(v);
  const patterns: string[] = [];
  let addPrefixSpace = false;
  steps.forEach((s, i) => {
    if (s['type'] === 'Split') {
      const pat = s['pattern'];
      const source = isObj(pat)
        ? typeof pat['Regex'] === 'string'
          ? pat['Regex']
          : typeof pat['String'] === 'string'
            ? pat['String'].replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')
            : undefined
        : undefined;
      if (source === undefined) throw bad(where, 'Split pre_tokenizer needs pattern.Regex');
      if (s['behavior'] !== 'Isolated' || s['invert'] === true) {
        const what = `Split with behavior ${JSON.stringify(s['behavior'])}${s['invert'] === true ? ' and invert' : ''} (only Isolated is)`;
        throw unsupported(where, 'pre_tokenizer', what);
      }
      patterns.push(source);
    } else if (s['type'] === 'ByteLevel') {
      if (i !== steps.length - 1)
        throw unsupported(where, 'pre_tokenizer', 'a non-final ByteLevel');
      addPrefixSpace = s['add_prefix_space'] === true;
      // HF prefixes every piece a Split made, not the text; rare enough to refuse.
      if (addPrefixSpace && patterns.length > 0) {
        throw unsupported(where, 'pre_tokenizer', 'ByteLevel with add_prefix_space after a Split');
      }
      if (s['use_regex'] !== false) patterns.push(PATTERNS.gpt2);
    } else {
      throw unsupported(where, 'pre_tokenizer', `of type ${typeOf(s)}`);
    }
  });
  if (steps.at(-1)?.['type'] !== 'ByteLevel') {
    throw unsupported(where, 'pre_tokenizer', 'without a final ByteLevel step');
  }
  return { patterns, addPrefixSpace };
}

function parseTemplateItems(v: unknown, specials: Obj, where: string): TemplatePiece[] {
  if (!Array.isArray(v)) throw bad(where, 'TemplateProcessing single/pair must be arrays');
  return v.map((item): TemplatePiece => {
    if (isObj(item) && isObj(item['Sequence'])) {
      const which = item['Sequence']['id'];
      if (which !== 'A' && which !== 'B') throw bad(where, `template sequence id ${which}`);
      return { kind: 'sequence', which };
    }
    if (isObj(item) && isObj(item['SpecialToken'])) {
      const token = String(item['SpecialToken']['id']);
      const entry = specials[token];
      if (!isObj(entry) || !Array.isArray(entry['ids'])) {
        throw bad(where, `template uses ${JSON.stringify(token)}, missing from special_tokens`);
      }
      return { kind: 'special', token, ids: entry['ids'] as number[] };
    }
    throw bad(where, `unreadable template item ${JSON.stringify(item)}`);
  });
}

function parsePostProcessor(v: unknown, where: string): Template | null {
  if (v === null || v === undefined) return null;
  if (!isObj(v)) throw bad(where, 'post_processor must be an object or null');
  if (v['type'] === 'ByteLevel') return null; // offsets only; ids are unchanged
  if (v['type'] === 'TemplateProcessing') {
    const specials = isObj(v['special_tokens']) ? v['special_tokens'] : {};
    return {
      single: parseTemplateItems(v['single'], specials, where),
      pair: parseTemplateItems(v['pair'], specials, where),
    };
  }
  if (v['type'] === 'Sequence' && Array.isArray(v['processors'])) {
    const found = (v['processors'] as unknown[])
      .map((p) => parsePostProcessor(p, where))
      .filter((t) => t !== null);
    if (found.length <= 1) return found[0] ?? null;
  }
  throw unsupported(where, 'post_processor', `of type ${typeOf(v)}`);
}

function parseAddedTokens(v: unknown, where: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(where, 'added_tokens must be an array');
  return v.map((t, i) => {
    if (!isObj(t) || !Number.isInteger(t['id']) || typeof t['content'] !== 'string') {
      throw bad(where, `added_tokens[${i}] needs an integer id and a string content`);
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

function parseModel(v: unknown, where: string) {
  if (!isObj(v)) throw bad(where, 'model section missing');
  if (v['type'] !== undefined && v['type'] !== 'BPE') {
    throw unsupported(where, 'model', `of type ${typeOf(v)} (only BPE is)`);
  }
  if (v['dropout'] !== undefined && v['dropout'] !== null && v['dropout'] !== 0) {
    throw unsupported(where, 'model', 'with BPE dropout');
  }
  if (v['byte_fallback'] === true) throw unsupported(where, 'model', 'with byte_fallback');
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    if (v[k] !== undefined && v[k] !== null && v[k] !== '') {
      throw unsupported(where, 'model', `with ${k} ${JSON.stringify(v[k])}`);
    }
  }
  if (!isObj(v['vocab'])) throw bad(where, 'model.vocab must be an object of token → id');
  const vocab = new Map<string, number>();
  const rawVocab = v['vocab'];
  for (const tok in rawVocab) {
    const id = rawVocab[tok];
    if (!Number.isInteger(id)) throw bad(where, `model.vocab[${JSON.stringify(tok)}] is not an id`);
    vocab.set(tok, id as number);
  }
  const raw = v['merges'];
  if (!Array.isArray(raw)) throw bad(where, 'model.merges must be an array');
  let mergesForm: 'string' | 'pair' = 'string';
  // The split result, or the JSON's own pair, is the tuple: 150k+ merges, no copies.
  const merges = raw.map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2) return parts as [string, string];
    } else if (Array.isArray(m) && m.length === 2 && m.every((p) => typeof p === 'string')) {
      mergesForm = 'pair';
      return m as [string, string];
    }
    throw bad(where, `model.merges[${i}] = ${JSON.stringify(m)} is not "a b" or ["a", "b"]`);
  });
  const { vocab: _v, merges: _m, ...rest } = v;
  return { vocab, merges, ignoreMerges: v['ignore_merges'] === true, mergesForm, rest };
}

/** A token field of tokenizer_config.json: a string, or an AddedToken object with content. */
function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

function parseConfig(config: Obj): SpecialTokensConfig {
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
export function specFromJson(json: unknown, config: unknown, where: string): BpeSpec {
  if (!isObj(json)) throw bad(where, 'not a JSON object');
  if (config !== undefined && !isObj(config)) throw bad(where, 'tokenizer_config is not an object');
  const model = parseModel(json['model'], where);
  const decoder = json['decoder'];
  if (!isObj(decoder) || decoder['type'] !== 'ByteLevel') {
    const what = isObj(decoder) ? `of type ${typeOf(decoder)}` : String(decoder);
    throw unsupported(where, 'decoder', `${what} (only ByteLevel is)`);
  }
  const { patterns, addPrefixSpace } = parsePreTokenizer(json['pre_tokenizer'], where);
  const {
    model: _model,
    added_tokens: _added,
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: postProcessor,
    decoder: _decoder,
    ...extra
  } = json;
  return {
    vocab: model.vocab,
    merges: model.merges,
    ignoreMerges: model.ignoreMerges,
    addedTokens: parseAddedTokens(json['added_tokens'], where),
    normalizer: parseNormalizer(normalizer, where),
    patterns,
    addPrefixSpace,
    template: parsePostProcessor(postProcessor, where),
    special: parseConfig(config ?? {}),
    json: {
      normalizer: normalizer ?? null,
      preTokenizer,
      postProcessor: postProcessor ?? null,
      decoder,
      model: model.rest,
      mergesForm: model.mergesForm,
      extra,
      config: config ?? {},
    },
  };
}
