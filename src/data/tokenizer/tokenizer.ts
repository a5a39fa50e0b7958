import { TroupeError } from '../../errors.js';
import { type AddedToken, AddedTokenSplitter } from './added-tokens.js';
import type { Where } from './json.js';
import { BpeModel } from './models/bpe.js';
import { buildModel, type Model } from './models/index.js';
import { buildDecoder, type Decoder } from './pipeline/decoders.js';
import { buildNormalizer, type Normalizer } from './pipeline/normalizers.js';
import { buildPostProcessor } from './pipeline/post-processors.js';
import {
  buildPreTokenizer,
  chain,
  type Emit,
  type PreTokenizer,
} from './pipeline/pre-tokenizers.js';
import type { Template, TemplatePiece, TokenizerSpec } from './spec.js';
import type { TokenizerLike } from './types.js';

/** Pre-tokens longer than this are not cached: long runs are rare and would pin memory. */
const MAX_CACHED_CHARS = 64;
const CACHE_ENTRIES = 1 << 16;

/** Lone surrogates → U+FFFD, as TextEncoder would encode them (ES2024; Node 20 has it). */
const wellFormed = (s: string): string => (s as string & { toWellFormed(): string }).toWellFormed();

/**
 * A Hugging Face tokenizer run as HF runs it: added tokens are split out of the raw text first;
 * each stretch between them is normalized, split again at the added tokens that match
 * normalized text, cut into pre-tokens, and each pre-token is tokenized by the model (BPE,
 * WordPiece or Unigram); the post-processor's template goes around the ids. Decoding maps ids
 * to token strings (added tokens included) and runs the decoder chain over them.
 *
 * Byte-level BPE (GPT-2, Llama 3, Qwen) takes a fast path: a final ByteLevel pre-tokenizer hands
 * the model raw pre-tokens, whose UTF-8 bytes go straight to byte-symbol ids. Every model's
 * output per pre-token is cached.
 */
export class Tokenizer implements TokenizerLike {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly chatTemplate?: string;

  private readonly model: Model;
  private readonly normalizer: Normalizer | null;
  /** The pre-tokenizer's steps in order. */
  private readonly steps: readonly PreTokenizer[];
  /** Pre-tokenizes a stretch of normalized text into `this.out`. */
  private readonly cutStretch: Emit;
  /** Where `cutStretch` puts ids: the array of the encode in progress. */
  private out: number[] = [];
  /** The BPE model when the byte-level fast path applies. */
  private readonly byteLevel: BpeModel | undefined;
  private readonly decoder: Decoder | null;
  private readonly template: Template | null;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  /** Added tokens matched in the raw text, and those matched in normalized text. */
  private readonly rawSplitter: AddedTokenSplitter;
  private readonly normalizedSplitter: AddedTokenSplitter;
  /** Whether a stretch's normalized start must be checked (Metaspace prepend_scheme 'first'). */
  private readonly usesStart: boolean;
  /** Cuts a long pre-token into parts that tokenize independently (SentencePiece BPE). */
  private readonly cutLong: ((piece: string, emit: (part: string) => void) => void) | undefined;
  /** Pre-token → ids; a bare number for the common one-token case. Oldest entry evicted. */
  private readonly cache = new Map<string, number | number[]>();

  constructor(readonly spec: TokenizerSpec) {
    const file = spec.source ?? 'tokenizer.json';
    const w = (path: string): Where => ({ file, path });
    this.model = buildModel(spec.model, w('model'));
    this.normalizer = buildNormalizer(spec.normalizer, w('normalizer'));
    const steps = buildPreTokenizer(spec.preTokenizer, w('pre_tokenizer'));
    const last = steps.at(-1);
    const fast =
      this.model instanceof BpeModel && this.model.byteLevelReady && last?.raw !== undefined;
    this.byteLevel = fast ? (this.model as BpeModel) : undefined;
    this.steps = steps.map((s) => s.run);
    this.usesStart = steps.some((s) => s.usesStart === true);
    this.cutStretch = chain(
      steps.map((s, i) => (fast && i === steps.length - 1 ? s.raw! : s.run)),
      (piece) => this.encodePiece(piece, this.out),
    );
    this.cutLong = this.model instanceof BpeModel ? this.model.metaspaceCuts() : undefined;
    this.decoder = buildDecoder(spec.decoder, w('decoder'));
    this.template = buildPostProcessor(spec.postProcessor, w('post_processor'));
    let size = this.model.size;
    for (const t of spec.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      if (t.id >= size) size = t.id + 1;
    }
    this.vocabSize = size;
    const normalize = this.normalizer ?? ((s: string) => s);
    this.rawSplitter = new AddedTokenSplitter(spec.addedTokens.filter((t) => !t.normalized));
    this.normalizedSplitter = new AddedTokenSplitter(
      spec.addedTokens.filter((t) => t.normalized),
      (t) => normalize(t.content),
    );
    const { special } = spec;
    this.bosTokenId = special.bosToken === undefined ? undefined : this.tokenToId(special.bosToken);
    this.eosTokenId = special.eosToken === undefined ? undefined : this.tokenToId(special.eosToken);
    this.padTokenId = special.padToken === undefined ? undefined : this.tokenToId(special.padToken);
    this.chatTemplate = special.chatTemplate;
  }

  /** The model kind: 'BPE', 'WordPiece' or 'Unigram'. */
  get kind(): TokenizerSpec['model']['type'] {
    return this.spec.model.type;
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

  /** The token strings of `encode` (the model's pieces, added tokens as their content). */
  tokenize(text: string, opts: { readonly addSpecialTokens?: boolean } = {}): string[] {
    return this.encode(text, opts).map((id) => this.idToToken(id)!);
  }

  /**
   * The pre-tokens the model sees for `text` (added tokens left out): normalized and cut by the
   * pre-tokenizer, byte-mapped where a final ByteLevel step would map them. What a trainer
   * counts.
   */
  preTokenize(text: string): string[] {
    const pieces: string[] = [];
    const sink = chain(this.steps, (piece) => pieces.push(piece));
    this.walk(text, sink, () => undefined);
    return pieces;
  }

  decode(ids: readonly number[], opts: { readonly skipSpecialTokens?: boolean } = {}): string {
    const tokens: string[] = [];
    for (const id of ids) {
      const added = this.addedById.get(id);
      if (added !== undefined) {
        if (!(opts.skipSpecialTokens && added.special)) tokens.push(added.content);
        continue;
      }
      const tok = this.model.idToToken(id);
      if (tok === undefined) {
        throw new TroupeError(
          'BAD_ARGUMENT',
          `Cannot decode id ${id}: it is no token of this tokenizer (vocab size ${this.vocabSize})`,
          { details: { id, vocabSize: this.vocabSize } },
        );
      }
      tokens.push(tok);
    }
    return this.decoder === null ? tokens.join(' ') : this.decoder(tokens).join('');
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.tokenToId(token);
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }

  /** Empties the pre-token cache (to bound memory, or to time encoding from cold). */
  clearCache(): void {
    this.cache.clear();
  }

  /** Ids of the text alone: no template, no BOS. */
  private encodeText(text: string): number[] {
    const out: number[] = [];
    this.out = out;
    this.walk(text, this.cutStretch, (t) => out.push(t.id));
    return out;
  }

  /**
   * `text` as the pipeline cuts it: the added tokens matched on the raw text, then on the
   * normalized stretches between them, go to `onAdded`; each stretch left goes to `onStretch`,
   * `first` when it starts the input (Metaspace's `prepend_scheme: first` reads that).
   */
  private walk(
    text: string,
    onStretch: (stretch: string, first: boolean) => void,
    onAdded: (t: AddedToken) => void,
  ): void {
    this.rawSplitter.split(
      wellFormed(text),
      (stretch, start) => {
        const normalized = this.normalizer === null ? stretch : this.normalizer(stretch);
        const first = start === 0 && this.startsAtOrigin(stretch);
        this.normalizedSplitter.split(
          normalized,
          (s, sub) => onStretch(s, first && sub === 0),
          onAdded,
        );
      },
      onAdded,
    );
  }

  /** Whether the normalized text of the input's first stretch still starts at its offset 0. */
  private startsAtOrigin(stretch: string): boolean {
    return !this.usesStart || this.normalizer?.keepsStart?.(stretch) !== false;
  }

  private encodePiece(piece: string, out: number[]): void {
    if (piece.length > MAX_CACHED_CHARS && this.cutLong !== undefined) {
      this.cutLong(piece, (part) => this.encodeCached(part, out));
    } else this.encodeCached(piece, out);
  }

  private encodeCached(piece: string, out: number[]): void {
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      if (typeof hit === 'number') out.push(hit);
      else for (const id of hit) out.push(id);
      return;
    }
    const start = out.length;
    if (this.byteLevel !== undefined) this.byteLevel.tokenizeUtf8(piece, out);
    else this.model.tokenize(piece, out);
    if (piece.length <= MAX_CACHED_CHARS) {
      if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(piece, out.length - start === 1 ? out[start] : out.slice(start));
    }
  }

  /** The template (or tokenizer_config's add_bos/add_eos) around the ids. */
  private postProcess(a: number[], b: number[] | undefined): number[] {
    const { template } = this;
    if (template !== null) {
      const out: number[] = [];
      const pieces: readonly TemplatePiece[] = b === undefined ? template.single : template.pair;
      // Appended id by id: a spread of a long text's ids overflows the call stack.
      for (const p of pieces) {
        const ids = p.kind === 'special' ? p.ids : p.which === 'A' ? a : (b ?? []);
        for (const id of ids) out.push(id);
      }
      return out;
    }
    const seq = b === undefined ? a : a.concat(b);
    const { addBosToken, addEosToken } = this.spec.special;
    const bos = addBosToken && this.bosTokenId !== undefined ? [this.bosTokenId] : [];
    const eos = addEosToken && this.eosTokenId !== undefined ? [this.eosTokenId] : [];
    return bos.length + eos.length === 0 ? seq : [...bos, ...seq, ...eos];
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
