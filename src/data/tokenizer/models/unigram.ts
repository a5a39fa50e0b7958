import { TroupeError } from '../../../errors.js';
import { arr, bad, bool, type Obj, type Where } from '../json.js';
import type { ModelData } from '../spec.js';
import { byteToken } from './bpe.js';
import type { Model, ModelKind } from './types.js';

type UnigramData = Extract<ModelData, { type: 'Unigram' }>;

/** What an unknown character scores below the lowest piece (HF's K_UNK_PENALTY). */
export const UNK_PENALTY = 10;

/**
 * The pieces as a prefix table: every piece maps to its id, and every proper prefix of a piece
 * that is not itself one maps to -1, so a left-to-right scan stops where no piece can continue.
 * The same lookup order as HF's trie: shorter matches first.
 */
export class PieceTable {
  private readonly map = new Map<string, number>();

  constructor(pieces: readonly (readonly [string, number])[]) {
    pieces.forEach(([p], id) => {
      for (let n = 1; n < p.length; n++) {
        const pre = p.slice(0, n);
        if (!this.map.has(pre)) this.map.set(pre, -1);
      }
      // A repeated piece keeps its last id, as HF's token → id map does.
      if (p.length > 0) this.map.set(p, id);
    });
  }

  get(piece: string): number | undefined {
    const id = this.map.get(piece);
    return id === undefined || id < 0 ? undefined : id;
  }

  /** Calls `fn(id, end)` for each piece that starts at `text[start]`, shortest first. */
  forEachAt(text: string, start: number, fn: (id: number, end: number) => void): void {
    for (let end = start + 1; end <= text.length; end++) {
      const id = this.map.get(text.slice(start, end));
      if (id === undefined) return;
      if (id >= 0) fn(id, end);
    }
  }
}

/**
 * Unigram (HF models/unigram, SentencePiece): the segmentation of a pre-token with the highest
 * total log-probability, by Viterbi over the lattice of pieces that match at each character. A
 * character no piece starts with gets the unknown piece at min score − 10; adjacent unknowns
 * fuse into one. A segment not in the vocab becomes its bytes' `<0x..>` tokens with
 * `byte_fallback`, else `unk_id`.
 */
export class UnigramModel implements Model {
  readonly size: number;
  readonly table: PieceTable;
  readonly scores: Float64Array;
  readonly unkId: number | undefined;
  readonly minScore: number;
  private readonly byteFallback: boolean;

  constructor(
    private readonly data: UnigramData,
    private readonly w: Where,
  ) {
    const o = data.options;
    const unk = o['unk_id'];
    if (
      unk !== undefined &&
      unk !== null &&
      (!Number.isInteger(unk) || (unk as number) < 0 || (unk as number) >= data.pieces.length)
    ) {
      throw bad(
        w,
        `unk_id ${JSON.stringify(unk)} is not the index of a piece (${data.pieces.length} pieces)`,
      );
    }
    this.unkId = typeof unk === 'number' ? unk : undefined;
    this.byteFallback = bool(o, 'byte_fallback', w, false);
    this.size = data.pieces.length;
    this.table = new PieceTable(data.pieces);
    this.scores = Float64Array.from(data.pieces, ([, s]) => s);
    this.minScore = data.pieces.reduce((m, [, s]) => Math.min(m, s), Number.POSITIVE_INFINITY);
  }

  tokenToId(token: string): number | undefined {
    return this.table.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.data.pieces[id]?.[0];
  }

  private missingUnk(): TroupeError {
    return new TroupeError(
      'BAD_ARGUMENT',
      `${this.w.file}: a character matches no Unigram piece and the model has no unk_id`,
    );
  }

  /** The best segmentation's pieces as strings, unknown runs fused (HF's `encode_optimized`). */
  segment(text: string): string[] {
    const n = text.length;
    const unkScore = this.minScore - UNK_PENALTY;
    const best = new Float64Array(n + 1);
    const from = new Int32Array(n + 1).fill(-1);
    const ids = new Int32Array(n + 1);
    for (let start = 0; start < n; ) {
      const here = best[start];
      const cp = text.codePointAt(start)!;
      const charEnd = start + (cp > 0xffff ? 2 : 1);
      let single = false;
      this.table.forEachAt(text, start, (id, end) => {
        const score = this.scores[id] + here;
        if (from[end] < 0 || score > best[end]) {
          best[end] = score;
          from[end] = start;
          ids[end] = id;
        }
        if (end === charEnd) single = true;
      });
      if (!single) {
        const score = unkScore + here;
        if (from[charEnd] < 0 || score > best[charEnd]) {
          if (this.unkId === undefined) throw this.missingUnk();
          best[charEnd] = score;
          from[charEnd] = start;
          ids[charEnd] = this.unkId;
        }
      }
      start = charEnd;
    }
    const out: string[] = [];
    let unk = '';
    for (let end = n; end > 0; end = from[end]) {
      const piece = text.slice(from[end], end);
      if (ids[end] === this.unkId) unk = piece + unk;
      else {
        if (unk !== '') out.push(unk);
        unk = '';
        out.push(piece);
      }
    }
    if (unk !== '') out.push(unk);
    return out.reverse();
  }

  tokenize(piece: string, out: number[]): void {
    if (piece.length === 0) return;
    for (const s of this.segment(piece)) {
      const id = this.table.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      if (this.byteFallback) {
        const bytes = [...new TextEncoder().encode(s)].map((b) => this.table.get(byteToken(b)));
        if (bytes.every((b) => b !== undefined)) {
          out.push(...(bytes as number[]));
          continue;
        }
      }
      if (this.unkId === undefined) throw this.missingUnk();
      out.push(this.unkId);
    }
  }
}

function readPieces(v: Obj, w: Where): [string, number][] {
  return arr(v, 'vocab', w).map((p, i) => {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'number') {
      throw bad(w, `model.vocab[${i}] = ${JSON.stringify(p)} is not ["piece", score]`);
    }
    return [p[0], p[1]];
  });
}

export const UNIGRAM: ModelKind = {
  read(v, w) {
    const { type: _t, vocab: _v, ...options } = v;
    return { type: 'Unigram', pieces: readPieces(v, w), options };
  },
  build: (data, w) => new UnigramModel(data as UnigramData, w),
  writeTables(data) {
    const lines = (data as UnigramData).pieces.map(
      ([p, s]) => `      [${JSON.stringify(p)}, ${JSON.stringify(s)}]`,
    );
    return [`    "vocab": [\n${lines.join(',\n')}\n    ]`];
  },
};
