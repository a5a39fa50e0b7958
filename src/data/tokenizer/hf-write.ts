import type { AddedToken } from './added-tokens.js';
import type { BpeSpec } from './spec.js';

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
 * The tokenizer.json text of a spec, in HF's layout. Vocab is written by hand in id order (a
 * JS object would move integer-like keys such as "0" to the front). Merges keep the form they
 * were read in; a merge whose tokens contain a space is always written as a pair, since the
 * "a b" form cannot hold it.
 */
export function tokenizerJsonText(spec: BpeSpec): string {
  const { json } = spec;
  const vocab = [...spec.vocab].sort((a, b) => a[1] - b[1]);
  const pairs =
    json.mergesForm === 'pair' || spec.merges.some(([a, b]) => a.includes(' ') || b.includes(' '));
  const merges = spec.merges.map(([a, b]) =>
    pairs ? `[${JSON.stringify(a)}, ${JSON.stringify(b)}]` : JSON.stringify(`${a} ${b}`),
  );
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: spec.ignoreMerges,
    ...json.model,
  };
  const lines = [
    '{',
    ...Object.entries({ version: '1.0', truncation: null, padding: null, ...json.extra }).map(
      ([k, v]) => `  ${JSON.stringify(k)}: ${nested(v, '  ')},`,
    ),
    `  "added_tokens": ${nested(spec.addedTokens.map(addedTokenJson), '  ')},`,
    `  "normalizer": ${nested(json.normalizer, '  ')},`,
    `  "pre_tokenizer": ${nested(json.preTokenizer, '  ')},`,
    `  "post_processor": ${nested(json.postProcessor, '  ')},`,
    `  "decoder": ${nested(json.decoder, '  ')},`,
    '  "model": {',
    ...Object.entries(model).map(([k, v]) => `    ${JSON.stringify(k)}: ${nested(v, '    ')},`),
    '    "vocab": {',
    vocab.map(([tok, id]) => `      ${JSON.stringify(tok)}: ${id}`).join(',\n'),
    '    },',
    '    "merges": [',
    merges.map((m) => `      ${m}`).join(',\n'),
    '    ]',
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
export function tokenizerConfigJson(spec: BpeSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { ...spec.json.config };
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
