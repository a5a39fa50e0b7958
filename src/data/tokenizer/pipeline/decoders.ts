import { symbolsToBytes } from '../bytes.js';
import {
  arr,
  at,
  type Builder,
  bad,
  bool,
  build,
  int,
  type Obj,
  oneOf,
  str,
  type Where,
} from '../json.js';
import { replacer } from './normalizers.js';

/**
 * Decoders: HF's `decode_chain`, token strings → strings, each a pure function built from its
 * tokenizer.json section; the decoded text is the chain's output joined. Added tokens pass
 * through the chain like any other token, as in HF.
 */
export type Decoder = (tokens: string[]) => string[];

const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const enc = new TextEncoder();

/** The bytes each token's symbols stand for (a token outside the table: its own UTF-8). */
const byteLevel: Decoder = (tokens) => {
  const parts = tokens.map((t) => symbolsToBytes(t) ?? enc.encode(t));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let n = 0;
  for (const p of parts) {
    all.set(p, n);
    n += p.length;
  }
  return [utf8.decode(all)];
};

/** `<0xAB>` tokens → their byte; a run of them that is not valid UTF-8 gives one U+FFFD per byte. */
const byteFallback: Decoder = (tokens) => {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(bytes)));
    } catch {
      for (let i = 0; i < bytes.length; i++) out.push('\ufffd');
    }
    bytes = [];
  };
  for (const t of tokens) {
    const m =
      t.length === 6 && /^<0x[0-9A-Fa-f]{2}>$/.test(t) ? Number.parseInt(t.slice(3, 5), 16) : -1;
    if (m >= 0) bytes.push(m);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
};

function oneChar(v: Obj, key: string, w: Where): string {
  const c = str(v, key, w);
  if ([...c].length !== 1) throw bad(w, `${key} must be one character, got ${JSON.stringify(c)}`);
  return c;
}

function metaspace(v: Obj, w: Where): Decoder {
  const r = oneChar(v, 'replacement', w);
  const never =
    v['prepend_scheme'] === undefined
      ? v['add_prefix_space'] === false
      : oneOf(v, 'prepend_scheme', w, ['first', 'always', 'never'] as const, 'always') === 'never';
  return (tokens) =>
    tokens.map((t, i) => (t.includes(r) ? t.replaceAll(r, i === 0 && !never ? '' : ' ') : t));
}

/** The WordPiece decoder's clean-up of spaces before punctuation and contractions. */
export function cleanup(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(' do not', " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function wordPiece(v: Obj, w: Where): Decoder {
  const prefix = str(v, 'prefix', w, '##');
  const clean = bool(v, 'cleanup', w, true);
  return (tokens) =>
    tokens.map((t, i) => {
      let s = t;
      if (i !== 0) s = t.startsWith(prefix) ? t.slice(prefix.length) : ` ${t}`;
      return clean ? cleanup(s) : s;
    });
}

/** Strip: up to `start` leading and `stop` trailing copies of `content` off each token. */
function strip(v: Obj, w: Where): Decoder {
  const c = oneChar(v, 'content', w);
  const start = int(v, 'start', w, 0);
  const stop = int(v, 'stop', w, 0);
  return (tokens) =>
    tokens.map((t) => {
      const chars = [...t];
      let a = 0;
      while (a < start && a < chars.length && chars[a] === c) a++;
      let b = chars.length;
      while (chars.length - b < stop && b > a && chars[b - 1] === c) b--;
      return chars.slice(a, b).join('');
    });
}

function ctc(v: Obj, w: Where): Decoder {
  const pad = str(v, 'pad_token', w, '<pad>');
  const delimiter = str(v, 'word_delimiter_token', w, '|');
  const clean = bool(v, 'cleanup', w, true);
  return (tokens) =>
    tokens
      .filter((t, i) => i === 0 || t !== tokens[i - 1])
      .map((t) => {
        const s = t.replaceAll(pad, '');
        return clean ? cleanup(s).replaceAll(delimiter, ' ') : s;
      })
      .filter((s) => s !== '');
}

export const DECODERS: Readonly<Record<string, Builder<Decoder>>> = {
  ByteLevel: () => byteLevel,
  ByteFallback: () => byteFallback,
  Fuse: () => (tokens) => [tokens.join('')],
  Metaspace: metaspace,
  WordPiece: wordPiece,
  Replace: (v, w) => {
    const f = replacer(v, w);
    return (tokens) => tokens.map(f);
  },
  Strip: strip,
  BPEDecoder: (v, w) => {
    const suffix = str(v, 'suffix', w, '</w>');
    return (tokens) =>
      tokens.map((t, i) => t.replaceAll(suffix, i === tokens.length - 1 ? '' : ' '));
  },
  CTC: ctc,
  Sequence: (v, w) => {
    const steps = arr(v, 'decoders', w).map((d, i) => buildDecoder(d, at(w, `decoders[${i}]`)));
    return (tokens) => steps.reduce((t, f) => (f === null ? t : f(t)), tokens);
  },
};

/** tokenizer.json's `decoder` section → a decoder, or null (HF then joins tokens with ' '). */
export function buildDecoder(v: unknown, w: Where): Decoder | null {
  if (v === null || v === undefined) return null;
  return build(DECODERS, 'decoder', v, w);
}
