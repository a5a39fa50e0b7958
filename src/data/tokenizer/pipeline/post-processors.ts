import {
  arr,
  at,
  type Builder,
  bad,
  build,
  isObj,
  type Obj,
  unsupported,
  type Where,
} from '../json.js';
import type { Template, TemplatePiece } from '../spec.js';

/**
 * Post-processors: what `encode(..., { addSpecialTokens: true })` puts around the ids, as a
 * template of special-token ids and the sequences A and B. Processors that only touch offsets
 * (ByteLevel) give null.
 */

function templateItems(v: unknown, specials: Obj, w: Where): TemplatePiece[] {
  if (!Array.isArray(v)) throw bad(w, 'TemplateProcessing single/pair must be arrays');
  return v.map((item): TemplatePiece => {
    if (isObj(item) && isObj(item['Sequence'])) {
      const which = item['Sequence']['id'];
      if (which !== 'A' && which !== 'B')
        throw bad(w, `template sequence id ${JSON.stringify(which)}`);
      return { kind: 'sequence', which };
    }
    if (isObj(item) && isObj(item['SpecialToken'])) {
      const token = String(item['SpecialToken']['id']);
      const entry = specials[token];
      if (!isObj(entry) || !Array.isArray(entry['ids'])) {
        throw bad(w, `template uses ${JSON.stringify(token)}, missing from special_tokens`);
      }
      return { kind: 'special', token, ids: entry['ids'] as number[] };
    }
    throw bad(w, `unreadable template item ${JSON.stringify(item)}`);
  });
}

/** A `[token, id]` pair (BertProcessing's `cls` and `sep`). */
function tokenPair(v: Obj, key: string, w: Where): TemplatePiece {
  const p = v[key];
  if (!Array.isArray(p) || typeof p[0] !== 'string' || !Number.isInteger(p[1])) {
    throw bad(w, `field '${key}' must be ["token", id], got ${JSON.stringify(p)}`);
  }
  return { kind: 'special', token: p[0], ids: [p[1] as number] };
}

const A: TemplatePiece = { kind: 'sequence', which: 'A' };
const B: TemplatePiece = { kind: 'sequence', which: 'B' };

export const POST_PROCESSORS: Readonly<Record<string, Builder<Template | null>>> = {
  ByteLevel: () => null,
  TemplateProcessing: (v, w) => {
    const specials = isObj(v['special_tokens']) ? v['special_tokens'] : {};
    return {
      single: templateItems(v['single'], specials, at(w, 'single')),
      pair: templateItems(v['pair'], specials, at(w, 'pair')),
    };
  },
  /** [CLS] A [SEP] and [CLS] A [SEP] B [SEP]. */
  BertProcessing: (v, w) => {
    const cls = tokenPair(v, 'cls', w);
    const sep = tokenPair(v, 'sep', w);
    return { single: [cls, A, sep], pair: [cls, A, sep, B, sep] };
  },
  /** <s> A </s> and <s> A </s> </s> B </s>. */
  RobertaProcessing: (v, w) => {
    const cls = tokenPair(v, 'cls', w);
    const sep = tokenPair(v, 'sep', w);
    return { single: [cls, A, sep], pair: [cls, A, sep, sep, B, sep] };
  },
  Sequence: (v, w) => {
    const found = arr(v, 'processors', w)
      .map((p, i) => buildPostProcessor(p, at(w, `processors[${i}]`)))
      .filter((t) => t !== null);
    if (found.length > 1) {
      throw unsupported(w, 'a Sequence with more than one processor that adds special tokens');
    }
    return found[0] ?? null;
  },
};

/** tokenizer.json's `post_processor` section → its template, or null when ids pass unchanged. */
export function buildPostProcessor(v: unknown, w: Where): Template | null {
  if (v === null || v === undefined) return null;
  return build(POST_PROCESSORS, 'post_processor', v, w);
}
