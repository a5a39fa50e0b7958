import type { AddedToken } from './added-tokens.js';
import { MODELS } from './models/index.js';
import type { TokenizerSpec } from './spec.js';

/** Indents every line after the first of a pretty-printed JSON value by `pad`. */
const nested = (v: unknown, pad: string) => JSON.stringify(v, null, 2).replaceAll('\n', `\n${pad}`);

function addedTokenJson(t: AddedToken) {
  return {
    id: t.id,
    content: t.content,
    single_word: t.singleWord,
    lstrip: t.lstrip,
    rstrip: t.rstrip,
    normalized: t.normalized,
    special: t.special,
  };
}

/**
 * The tokenizer.json text of a spec, in HF's layout: the pipeline sections as they were read or
 * generated, and the model's options followed by its tables, written by its model kind in id
 * order.
 */
export function tokenizerJsonText(spec: TokenizerSpec): string {
  const { model } = spec;
  const options = { type: model.type, ...model.options };
  const lines = [
    '{',
    ...Object.entries({ version: '1.0', truncation: null, padding: null, ...spec.extra }).map(
      ([k, v]) => `  ${JSON.stringify(k)}: ${nested(v, '  ')},`,
    ),
    `  "added_tokens": ${nested(spec.addedTokens.map(addedTokenJson), '  ')},`,
    `  "normalizer": ${nested(spec.normalizer, '  ')},`,
    `  "pre_tokenizer": ${nested(spec.preTokenizer, '  ')},`,
    `  "post_processor": ${nested(spec.postProcessor, '  ')},`,
    `  "decoder": ${nested(spec.decoder, '  ')},`,
    '  "model": {',
    ...Object.entries(options).map(([k, v]) => `    ${JSON.stringify(k)}: ${nested(v, '    ')},`),
    MODELS[model.type].writeTables(model).join(',\n'),
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}

/**
 * tokenizer_config.json: the one read, with the spec's special tokens and chat template written
 * over it where they differ, so an unchanged tokenizer writes back the file it came with.
 */
export function tokenizerConfigJson(spec: TokenizerSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { ...spec.config };
  const { special } = spec;
  const name = (v: unknown) =>
    typeof v === 'string' ? v : (v as { content?: string } | null)?.content;
  const setToken = (key: string, value: string | undefined) => {
    if (name(out[key]) !== value) out[key] = value ?? null;
  };
  const setFlag = (key: string, value: boolean) => {
    if ((out[key] === true) !== value) out[key] = value;
  };
  setFlag('add_bos_token', special.addBosToken);
  setFlag('add_eos_token', special.addEosToken);
  setToken('bos_token', special.bosToken);
  setToken('eos_token', special.eosToken);
  setToken('pad_token', special.padToken);
  if (special.chatTemplate !== undefined && out['chat_template'] === undefined) {
    out['chat_template'] = special.chatTemplate;
  }
  if (out['added_tokens_decoder'] === undefined) {
    out['added_tokens_decoder'] = Object.fromEntries(
      spec.addedTokens.map((t) => {
        const { id, ...rest } = addedTokenJson(t);
        return [String(id), rest];
      }),
    );
  }
  out['tokenizer_class'] ??= 'PreTrainedTokenizerFast';
  return out;
}
