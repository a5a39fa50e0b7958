import { TroupeError } from '../../errors.js';
import { type AddedToken, AddedTokenSplitter } from './added-tokens.js';
import { BYTE_TO_CHAR, bytesToSymbols, symbolsToBytes, utf8Encode } from './bytes.js';
import { applyMerges, PairTable } from './merges.js';
import { compilePattern } from './pattern.js';
import type { BpeSpec, TemplatePiece } from './spec.js';
import type { TokenizerLike } from './types.js';

/** Pre-tokens longer than this are not cached: long runs are rare and would pin memory. */
const MAX_CACHED_CHARS = 64;
const CACHE_ENTRIES = 1 << 16;

/** Lone surrogates → U+FFFD, as TextEncoder would encode them (ES2024; Node 20 has it). */
const wellFormed = (s: string): string => (s as string & { toWellFormed(): string }).toWellFormed();

/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen2): added tokens are split out first, the rest is
 * normalised (NFC, if asked), cut into pre-tokens by regex, each pre-token's UTF-8 bytes merged
 * by rank. encode → decode gives back any string, except that a lone surrogate comes back as
 * U+FFFD (it has no UTF-8) and NFC tokenizers return NFC text. Decoding invalid UTF-8 (a token
 * sequence cut inside a character) yields U+FFFD, as TextDecoder does.
 */
export class BpeTokenizer implements TokenizerLike {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly chatTemplate?: string;

  private readonly table: PairTable;
  /** Id of each byte's single-character token, -1 when the vocab lacks it. */
  private readonly byteIds = new Int32Array(256);
  private readonly idToTok: string[] = [];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly splitter: AddedTokenSplitter;
  private readonly regexes: readonly RegExp[];
  /** Pre-token → ids; a bare number for the common one-token case. Oldest entry evicted. */
  private readonly cache = new Map<string, number | number[]>();
  private readonly tokenBytes: (Uint8Array | undefined)[] = [];
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private bytes = new Uint8Array(256);
  private sym = new Int32Array(256);

  constructor(readonly spec: BpeSpec) {
    const { vocab, merges } = spec;
    let size = 0;
    for (const [tok, id] of vocab) {
      this.idToTok[id] = tok;
      if (id >= size) size = id + 1;
    }
    for (const t of spec.addedTokens) {
      this.idToTok[t.id] = t.content;
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      if (t.id >= size) size = t.id + 1;
    }
    this.vocabSize = size;
    this.table = new PairTable(
      merges.map(([a, b], rank) => {
        const ia = vocab.get(a);
        const ib = vocab.get(b);
        const iab = vocab.get(a + b);
        if (ia === undefined || ib === undefined || iab === undefined) {
          const missing = ia === undefined ? a : ib === undefined ? b : a + b;
          throw new TroupeError(
            'BAD_CHECKPOINT',
            `Merge ${rank} (${JSON.stringify(a)} ${JSON.stringify(b)}) uses ${JSON.stringify(missing)}, which is not in the vocab`,
            { details: { rank, merge: [a, b], missing } },
          );
        }
        return [ia, ib, iab] as const;
      }),
    );
    for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(BYTE_TO_CHAR[b]) ?? -1;
    this.splitter = new AddedTokenSplitter(spec.addedTokens);
    this.regexes = spec.patterns.map(compilePattern);
    const { special } = spec;
    this.bosTokenId = special.bosToken === undefined ? undefined : this.tokenToId(special.bosToken);
    this.eosTokenId = special.eosToken === undefined ? undefined : this.tokenToId(special.eosToken);
    this.padTokenId = special.padToken === undefined ? undefined : this.tokenToId(special.padToken);
    this.chatTemplate = special.chatTemplate;
  }

  encode(text: string, opts: { readonly addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.encodeText(text);
    return opts.addSpecialTokens === false ? ids : this.postProcess(ids, undefined);
  }

  /** Two sequences through the template's `pair` form (e.g. a prompt and its response). */
  encodePair(a: string, b: string, opts: { readonly addSpecialTokens?: boolean } = {}): number[] {
    const idsA = this.encodeText(a);
    const idsB = this.encodeText(b);
    if (opts.addSpecialTokens === false) return idsA.concat(idsB);
    return this.postProcess(idsA, idsB);
  }

  decode(ids: readonly number[], opts: { readonly skipSpecialTokens?: boolean } = {}): string {
    let text = '';
    let n = 0;
    const flush = () => {
      if (n > 0) text += this.decoder.decode(this.bytes.subarray(0, n));
      n = 0;
    };
    for (const id of ids) {
      const added = this.addedById.get(id);
      if (added !== undefined) {
        flush();
        if (!(opts.skipSpecialTokens && added.special)) text += added.content;
        continue;
      }
      const bytes = this.bytesOf(id);
      if (n + bytes.length > this.bytes.length) {
        const grown = new Uint8Array(2 * (n + bytes.length));
        grown.set(this.bytes.subarray(0, n));
        this.bytes = grown;
      }
      this.bytes.set(bytes, n);
      n += bytes.length;
    }
    flush();
    return text;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.spec.vocab.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToTok[id];
  }

  /** Empties the pre-token cache (to bound memory, or to time encoding from cold). */
  clearCache(): void {
    this.cache.clear();
  }

  /** Ids of the text alone: no template, no BOS. */
  private encodeText(text: string): number[] {
    const out: number[] = [];
    this.splitter.split(
      wellFormed(text),
      (s) => this.encodeOrdinary(s, out),
      (t) => out.push(t.id),
    );
    return out;
  }

  private encodeOrdinary(text: string, out: number[]): void {
    let s = this.spec.normalizer === 'NFC' ? text.normalize('NFC') : text;
    if (this.spec.addPrefixSpace && !s.startsWith(' ')) s = ` ${s}`;
    const emit = (piece: string) => this.encodePiece(piece, out);
    const step = (piece: string, level: number) => {
      if (level === this.regexes.length) emit(piece);
      else forEachPiece(piece, this.regexes[level], (p) => step(p, level + 1));
    };
    if (this.regexes.length === 1) forEachPiece(s, this.regexes[0], emit);
    else step(s, 0);
  }

  private encodePiece(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      if (typeof hit === 'number') out.push(hit);
      else for (const id of hit) out.push(id);
      return;
    }
    if (this.bytes.length < 3 * piece.length) this.bytes = new Uint8Array(6 * piece.length);
    const n = utf8Encode(piece, 0, piece.length, this.bytes);
    const start = out.length;
    const whole = this.spec.ignoreMerges
      ? this.spec.vocab.get(bytesToSymbols(this.bytes, 0, n))
      : undefined;
    if (whole !== undefined) {
      out.push(whole);
    } else {
      if (this.sym.length < n) this.sym = new Int32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const id = this.byteIds[this.bytes[i]];
        if (id < 0) {
          throw new TroupeError(
            'BAD_ARGUMENT',
            `Cannot encode ${JSON.stringify(piece)}: byte 0x${this.bytes[i].toString(16)} has no token in this vocab`,
          );
        }
        this.sym[i] = id;
      }
      applyMerges(this.sym, n, this.table, out);
    }
    if (piece.length <= MAX_CACHED_CHARS) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(piece, out.length - start === 1 ? out[start] : out.slice(start));
    }
  }

  /** The template (or tokenizer_config's add_bos/add_eos) around the ids. */
  private postProcess(a: number[], b: number[] | undefined): number[] {
    const { template } = this.spec;
    if (template !== null) {
      const out: number[] = [];
      const pieces: readonly TemplatePiece[] = b === undefined ? template.single : template.pair;
      for (const p of pieces) {
        if (p.kind === 'special') out.push(...p.ids);
        else out.push(...(p.which === 'A' ? a : (b ?? [])));
      }
      return out;
    }
    const seq = b === undefined ? a : a.concat(b);
    const { addBosToken, addEosToken } = this.spec.special;
    const bos = addBosToken && this.bosTokenId !== undefined ? [this.bosTokenId] : [];
    const eos = addEosToken && this.eosTokenId !== undefined ? [this.eosTokenId] : [];
    return bos.length + eos.length === 0 ? seq : [...bos, ...seq, ...eos];
  }

  private bytesOf(id: number): Uint8Array {
    const cached = this.tokenBytes[id];
    if (cached !== undefined) return cached;
    const tok = this.idToTok[id];
    if (tok === undefined) {
      throw new TroupeError(
        'BAD_ARGUMENT',
        `Cannot decode id ${id}: it is no token of this tokenizer (vocab size ${this.vocabSize})`,
        { details: { id, vocabSize: this.vocabSize } },
      );
    }
    // A token with a character outside the byte table decodes as its own UTF-8, as HF does.
    const bytes = symbolsToBytes(tok) ?? new TextEncoder().encode(tok);
    this.tokenBytes[id] = bytes;
    return bytes;
  }
}

/**
 * Calls `fn` for each pre-token of `text`: every regex match, and every gap between matches
 * (HF's Split with behavior 'Isolated' keeps both).
 */
export function forEachPiece(text: string, re: RegExp, fn: (piece: string) => void): void {
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m[0].length === 0) {
      // An empty match: step past one code point so the scan moves on.
      re.lastIndex += (text.codePointAt(re.lastIndex) ?? 0) > 0xffff ? 2 : 1;
      continue;
    }
    if (m.index > last) fn(text.slice(last, m.index));
    fn(m[0]);
    last = re.lastIndex;
  }
  if (last < text.length) fn(text.slice(last));
}
