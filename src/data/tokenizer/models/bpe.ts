import { TroupeError } from '../../../errors.js';
import { BYTE_TO_CHAR, bytesToSymbols, utf8Encode } from '../bytes.js';
import { bad, bool, type Obj, optStr, unsupported, type Where } from '../json.js';
import { applyMerges, PairTable } from '../merges.js';
import type { ModelData } from '../spec.js';
import { invert, type Model, type ModelKind, readVocab, vocabField } from './types.js';

type BpeData = Extract<ModelData, { type: 'BPE' }>;

const UTF8 = new TextEncoder();

/** A BPE model section's options as HF writes them, defaults first. */
export function bpeOptions(o: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    ...o,
  };
}

/** The `<0xAB>` token of a byte, as SentencePiece and HF's byte_fallback spell it. */
export const byteToken = (b: number): string =>
  `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/**
 * BPE (HF models/bpe): each character of a pre-token is a symbol (with the continuing-subword
 * prefix after the first and the end-of-word suffix on the last); a character outside the vocab
 * becomes its UTF-8 bytes' `<0x..>` tokens with `byte_fallback`, else `unk_token` (a run of them
 * fused into one with `fuse_unk`), else it is dropped, as HF drops it. Then pairs merge by rank,
 * lowest first and leftmost first among equals.
 *
 * `tokenizeUtf8` is byte-level BPE's fast path (GPT-2, Llama 3, Qwen): a pre-token's UTF-8 bytes
 * map straight to the ids of their byte symbols, with no string in between.
 */
export class BpeModel implements Model {
  readonly size: number;
  private readonly table: PairTable;
  private readonly tokens: string[];
  /** Id of each byte's byte-level symbol, -1 when the vocab lacks it. */
  private readonly byteIds = new Int32Array(256);
  /** Id of each byte's `<0x..>` token (byte_fallback), -1 when the vocab lacks it. */
  private readonly fallbackIds = new Int32Array(256);
  private readonly unkId: number | undefined;
  private readonly prefix: string;
  private readonly suffix: string;
  private readonly fuseUnk: boolean;
  private readonly byteFallback: boolean;
  private readonly ignoreMerges: boolean;
  private bytes = new Uint8Array(256);
  private sym = new Int32Array(256);

  constructor(
    private readonly data: BpeData,
    w: Where,
  ) {
    const { vocab, merges, options: o } = data;
    const dropout = o['dropout'];
    if (dropout !== undefined && dropout !== null && dropout !== 0) {
      throw unsupported(
        w,
        `BPE dropout ${JSON.stringify(dropout)} (Troupe encodes deterministically; set it to null)`,
      );
    }
    this.prefix = optStr(o, 'continuing_subword_prefix', w) ?? '';
    this.suffix = optStr(o, 'end_of_word_suffix', w) ?? '';
    this.fuseUnk = bool(o, 'fuse_unk', w, false);
    this.byteFallback = bool(o, 'byte_fallback', w, false);
    this.ignoreMerges = bool(o, 'ignore_merges', w, false);
    const unk = optStr(o, 'unk_token', w);
    this.unkId = unk === null ? undefined : vocab.get(unk);
    if (unk !== null && this.unkId === undefined) {
      throw bad(w, `unk_token ${JSON.stringify(unk)} is not in the vocab`);
    }
    ({ tokens: this.tokens, size: this.size } = invert(vocab));
    const prefixLen = this.prefix.length;
    this.table = new PairTable(
      merges.map(([a, b], rank) => {
        const ia = vocab.get(a);
        const ib = vocab.get(b);
        const merged = a + b.slice(prefixLen);
        const iab = vocab.get(merged);
        if (ia === undefined || ib === undefined || iab === undefined) {
          const missing = ia === undefined ? a : ib === undefined ? b : merged;
          throw new TroupeError(
            'BAD_CHECKPOINT',
            `${w.file}: Merge ${rank} (${JSON.stringify(a)} ${JSON.stringify(b)}) uses ${JSON.stringify(missing)}, which is not in the vocab`,
            { details: { rank, merge: [a, b], missing } },
          );
        }
        return [ia, ib, iab] as const;
      }),
    );
    for (let b = 0; b < 256; b++) {
      this.byteIds[b] = vocab.get(BYTE_TO_CHAR[b]) ?? -1;
      this.fallbackIds[b] = vocab.get(byteToken(b)) ?? -1;
    }
  }

  /**
   * For SentencePiece-style BPE (no pre-tokenizer: a whole stretch of text is one word), cuts
   * that leave the result unchanged: before each ▁ that follows a character c other than ▁,
   * unless some token contains "c▁". No merge can then span the cut, and ▁ (a token) ends any
   * unknown run, so the parts tokenize to what the whole does, and can be cached. Undefined
   * when the model cannot be cut this way.
   */
  metaspaceCuts(): ((piece: string, emit: (part: string) => void) => void) | undefined {
    const m = '\u2581';
    const { vocab } = this.data;
    if (this.ignoreMerges || this.prefix !== '' || this.suffix !== '' || !vocab.has(m)) {
      return undefined;
    }
    // Characters that some token glues to a following ▁: no cut after them.
    const glue = new Set<string>();
    for (const tok of vocab.keys()) {
      for (let i = tok.indexOf(m, 1); i > 0; i = tok.indexOf(m, i + 1)) {
        const lo = tok.charCodeAt(i - 1);
        const prev = lo >= 0xdc00 && lo <= 0xdfff && i >= 2 ? tok.slice(i - 2, i) : tok[i - 1];
        if (prev !== m) glue.add(prev);
      }
    }
    return (piece, emit) => {
      let start = 0;
      for (let i = piece.indexOf(m, 1); i > 0; i = piece.indexOf(m, i + 1)) {
        const lo = piece.charCodeAt(i - 1);
        const prev = lo >= 0xdc00 && lo <= 0xdfff && i >= 2 ? piece.slice(i - 2, i) : piece[i - 1];
        if (prev === m || glue.has(prev)) continue;
        emit(piece.slice(start, i));
        start = i;
      }
      emit(piece.slice(start));
    };
  }

  /** Whether `tokenizeUtf8` gives what `tokenize` gives on the byte-level symbols of a piece. */
  get byteLevelReady(): boolean {
    return this.prefix === '' && this.suffix === '';
  }

  tokenToId(token: string): number | undefined {
    return this.data.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  tokenize(piece: string, out: number[]): void {
    if (piece.length === 0) return;
    const { vocab } = this.data;
    if (this.ignoreMerges) {
      const whole = vocab.get(piece);
      if (whole !== undefined) {
        out.push(whole);
        return;
      }
    }
    // Each character gives at most its own bytes' tokens (prefix and suffix included).
    const most = piece.length * 3 + 3 * (this.prefix.length + this.suffix.length) + 4;
    if (this.sym.length < most) this.sym = new Int32Array(2 * most);
    let n = 0;
    let pendingUnk = false;
    for (let i = 0; i < piece.length; ) {
      const cp = piece.codePointAt(i)!;
      const len = cp > 0xffff ? 2 : 1;
      let s = piece.slice(i, i + len);
      if (i > 0 && this.prefix !== '') s = this.prefix + s;
      i += len;
      if (i === piece.length && this.suffix !== '') s += this.suffix;
      const id = vocab.get(s);
      if (id !== undefined) {
        if (pendingUnk) this.sym[n++] = this.unkId!;
        pendingUnk = false;
        this.sym[n++] = id;
        continue;
      }
      if (this.byteFallback) {
        const bytes = UTF8.encode(s);
        if (bytes.every((b) => this.fallbackIds[b] >= 0)) {
          // As HF: a pending unk is not flushed before the byte tokens.
          for (const b of bytes) this.sym[n++] = this.fallbackIds[b];
          continue;
        }
      }
      if (this.unkId !== undefined) {
        if (pendingUnk && !this.fuseUnk) this.sym[n++] = this.unkId;
        pendingUnk = true;
      }
    }
    if (pendingUnk) this.sym[n++] = this.unkId!;
    if (n > 0) applyMerges(this.sym, n, this.table, out);
  }

  /** Byte-level BPE of a raw (not yet byte-mapped) pre-token. */
  tokenizeUtf8(piece: string, out: number[]): void {
    if (this.bytes.length < 3 * piece.length) this.bytes = new Uint8Array(6 * piece.length);
    const n = utf8Encode(piece, 0, piece.length, this.bytes);
    if (this.ignoreMerges) {
      const whole = this.data.vocab.get(bytesToSymbols(this.bytes, 0, n));
      if (whole !== undefined) {
        out.push(whole);
        return;
      }
    }
    if (this.sym.length < n) this.sym = new Int32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const id = this.byteIds[this.bytes[i]];
      // A byte without a symbol token: the general path decides (unk, or dropped as HF drops it).
      if (id < 0) {
        this.tokenize(bytesToSymbols(this.bytes, 0, n), out);
        return;
      }
      this.sym[i] = id;
    }
    if (n > 0) applyMerges(this.sym, n, this.table, out);
  }
}

function readMerges(v: Obj, w: Where): Pick<BpeData, 'merges' | 'mergesForm'> {
  const raw = v['merges'] ?? [];
  if (!Array.isArray(raw)) throw bad(w, 'model.merges must be an array');
  let mergesForm: 'string' | 'pair' = 'string';
  // The split result, or the JSON's own pair, is the tuple: 500k+ merges, no copies.
  const merges = raw.map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const parts = m.split(' ');
      if (parts.length === 2) return parts as [string, string];
    } else if (Array.isArray(m) && m.length === 2 && m.every((p) => typeof p === 'string')) {
      mergesForm = 'pair';
      return m as [string, string];
    }
    throw bad(w, `model.merges[${i}] = ${JSON.stringify(m)} is not "a b" or ["a", "b"]`);
  });
  return { merges, mergesForm };
}

export const BPE: ModelKind = {
  read(v, w) {
    const { type: _t, vocab: _v, merges: _m, ...options } = v;
    return { type: 'BPE', vocab: readVocab(v, w), ...readMerges(v, w), options };
  },
  build: (data, w) => new BpeModel(data as BpeData, w),
  writeTables(data) {
    const d = data as BpeData;
    // A merge whose tokens hold a space can only be written as a pair.
    const pairs =
      d.mergesForm === 'pair' || d.merges.some(([a, b]) => a.includes(' ') || b.includes(' '));
    const merges = d.merges.map(([a, b]) =>
      pairs ? `[${JSON.stringify(a)}, ${JSON.stringify(b)}]` : JSON.stringify(`${a} ${b}`),
    );
    return [
      vocabField(d.vocab),
      `    "merges": [\n${merges.map((m) => `      ${m}`).join(',\n')}\n    ]`,
    ];
  },
};
