import { PieceTable, UNK_PENALTY } from './models/unigram.js';

/**
 * The Unigram trainer's lattices: each word under the current pieces, its best path (Viterbi)
 * and its expected piece counts (forward-backward), as SentencePiece's and HF's lattice.rs.
 */

/** A piece and its score: a log-probability, or (while seeding) a count. */
export type Piece = [string, number];

/** log(e^a + e^b), as SentencePiece computes it (`init`: the first term, return b). */
function logSumExp(a: number, b: number, init: boolean): number {
  if (init) return b;
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return hi > lo + 50 ? hi : hi + Math.log(Math.exp(lo - hi) + 1);
}

/**
 * The lattice of one word under the current pieces: every piece that matches at each position,
 * and the unknown piece (id 0, min score − 10) at a character no single-character piece covers.
 */
export interface Lattice {
  /** Node i spans [start[i], end[i]) with piece id[i] and score score[i]. */
  readonly start: number[];
  readonly end: number[];
  readonly id: number[];
  readonly score: number[];
  /** Nodes ending at each position. */
  readonly endsAt: number[][];
  readonly length: number;
}

export class Model {
  readonly table: PieceTable;
  readonly scores: Float64Array;
  readonly unkScore: number;

  constructor(readonly pieces: readonly Piece[]) {
    // Piece 0 is the unknown piece: it is never matched as text.
    this.table = new PieceTable(pieces.map(([p], i) => [i === 0 ? '' : p, 0] as const));
    this.scores = Float64Array.from(pieces, ([, s]) => s);
    let min = Number.POSITIVE_INFINITY;
    for (let i = 1; i < pieces.length; i++) if (pieces[i][1] < min) min = pieces[i][1];
    this.unkScore = min - UNK_PENALTY;
  }

  lattice(word: string): Lattice {
    const l: Lattice = { start: [], end: [], id: [], score: [], endsAt: [], length: word.length };
    for (let i = 0; i <= word.length; i++) l.endsAt.push([]);
    const add = (s: number, e: number, id: number, score: number) => {
      l.endsAt[e].push(l.start.length);
      l.start.push(s);
      l.end.push(e);
      l.id.push(id);
      l.score.push(score);
    };
    for (let s = 0; s < word.length; ) {
      const charEnd = s + ((word.codePointAt(s) ?? 0) > 0xffff ? 2 : 1);
      let single = false;
      this.table.forEachAt(word, s, (id, e) => {
        add(s, e, id, this.scores[id]);
        if (e === charEnd) single = true;
      });
      if (!single) add(s, charEnd, 0, this.unkScore);
      s = charEnd;
    }
    return l;
  }
}

/** The best path's node indices, optionally without one node (for the second-best path). */
export function viterbi(l: Lattice, skip = -1): number[] | undefined {
  const best = new Float64Array(l.length + 1).fill(Number.NEGATIVE_INFINITY);
  const back = new Int32Array(l.length + 1).fill(-1);
  best[0] = 0;
  for (let e = 1; e <= l.length; e++) {
    for (const n of l.endsAt[e]) {
      if (n === skip || best[l.start[n]] === Number.NEGATIVE_INFINITY) continue;
      const score = best[l.start[n]] + l.score[n];
      if (back[e] < 0 || score > best[e]) {
        best[e] = score;
        back[e] = n;
      }
    }
  }
  if (back[l.length] < 0) return undefined;
  const path: number[] = [];
  for (let e = l.length; e > 0; e = l.start[path[path.length - 1]]) path.push(back[e]);
  return path.reverse();
}

/**
 * Forward-backward over the lattice: adds freq · P(node) to `expected[id]` for every node and
 * returns log Z (SentencePiece's PopulateMarginal).
 */
export function marginals(l: Lattice, freq: number, expected: Float64Array): number {
  const n = l.start.length;
  const alpha = new Float64Array(n);
  const beta = new Float64Array(n);
  // Log-mass of paths from the start to each position / from each position to the end.
  const into = new Float64Array(l.length + 1);
  const outOf = new Float64Array(l.length + 1);
  const startsAt: number[][] = Array.from({ length: l.length + 1 }, () => []);
  for (let i = 0; i < n; i++) startsAt[l.start[i]].push(i);
  for (let e = 1; e <= l.length; e++) {
    let acc = 0;
    l.endsAt[e].forEach((i, k) => {
      alpha[i] = into[l.start[i]];
      acc = logSumExp(acc, alpha[i] + l.score[i], k === 0);
    });
    into[e] = acc;
  }
  for (let s = l.length - 1; s >= 0; s--) {
    let acc = 0;
    startsAt[s].forEach((i, k) => {
      beta[i] = outOf[l.end[i]];
      acc = logSumExp(acc, beta[i] + l.score[i], k === 0);
    });
    outOf[s] = acc;
  }
  const z = into[l.length];
  for (let i = 0; i < n; i++) {
    expected[l.id[i]] += freq * Math.exp(alpha[i] + l.score[i] + beta[i] - z);
  }
  return freq * z;
}
