/**
 * The BPE merge step over token ids. `PairTable` maps a pair of ids to its merge rank with
 * open addressing on typed arrays (a JS Map keyed by `a * V + b` boxes its keys past 2³¹ and is
 * several times slower). `applyMerges` merges a word by rank with a linked list and a min-heap,
 * O(n log n) for n symbols, so a pathological pre-token (10,000 spaces) costs no more than it must.
 */
export class PairTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly ranks: Int32Array;
  /** mergedId[rank]: the id the pair of that rank becomes. */
  readonly mergedId: Int32Array;
  private readonly mask: number;

  /** `merges[r] = [a, b, ab]`: the pair of ids (a, b) of rank r merges into id ab. */
  constructor(merges: readonly (readonly [number, number, number])[]) {
    let cap = 16;
    while (cap < merges.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.left = new Int32Array(cap).fill(-1);
    this.right = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.mergedId = new Int32Array(merges.length);
    merges.forEach(([a, b, ab], rank) => {
      this.mergedId[rank] = ab;
      let slot = this.hash(a, b);
      // A repeated pair takes its last rank: HF (and transformers.js) collect merges into a
      // map, where a later entry overwrites an earlier one.
      while (this.left[slot] !== -1 && !(this.left[slot] === a && this.right[slot] === b)) {
        slot = (slot + 1) & this.mask;
      }
      this.left[slot] = a;
      this.right[slot] = b;
      this.ranks[slot] = rank;
    });
  }

  private hash(a: number, b: number): number {
    return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) & this.mask;
  }

  /** The merge rank of the pair (a, b), or -1 when the pair never merges. */
  rank(a: number, b: number): number {
    let slot = this.hash(a, b);
    for (;;) {
      const l = this.left[slot];
      if (l === -1) return -1;
      if (l === a && this.right[slot] === b) return this.ranks[slot];
      slot = (slot + 1) & this.mask;
    }
  }
}

/** Heap keys pack (rank, position) into one float: rank · 2³² + position (exact below 2⁵³). */
const POS = 2 ** 32;

/** Reusable work arrays, grown as needed: encode allocates nothing per pre-token. */
let next = new Int32Array(64);
let prev = new Int32Array(64);
/** A binary min-heap of packed keys; each merge pushes at most two, so it never passes 2n. */
let heap = new Float64Array(128);
let heapSize = 0;

function grow(n: number): void {
  if (next.length >= n) return;
  let cap = next.length;
  while (cap < n) cap *= 2;
  next = new Int32Array(cap);
  prev = new Int32Array(cap);
  heap = new Float64Array(cap * 2);
}

function heapPush(key: number): void {
  let i = heapSize++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= key) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = key;
}

function heapPop(): number {
  const top = heap[0];
  const last = heap[--heapSize];
  let i = 0;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= heapSize) break;
    if (c + 1 < heapSize && heap[c + 1] < heap[c]) c++;
    if (heap[c] >= last) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = last;
  return top;
}

/**
 * Merges `sym[0, n)` in place, lowest rank first and leftmost first among equal ranks (the order
 * HF tokenizers uses), then appends the surviving ids to `out`.
 */
export function applyMerges(sym: Int32Array, n: number, table: PairTable, out: number[]): void {
  if (n === 1) {
    out.push(sym[0]);
    return;
  }
  grow(n);
  heapSize = 0;
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
    if (i + 1 < n) {
      const r = table.rank(sym[i], sym[i + 1]);
      if (r >= 0) heapPush(r * POS + i);
    }
  }
  while (heapSize > 0) {
    const key = heapPop();
    const r = Math.floor(key / POS);
    const i = key - r * POS;
    const j = next[i];
    // Stale entry: the left symbol was merged away, or either side changed since the push.
    if (sym[i] < 0 || j < 0 || table.rank(sym[i], sym[j]) !== r) continue;
    sym[i] = table.mergedId[r];
    sym[j] = -1;
    const k = next[j];
    next[i] = k;
    if (k >= 0) {
      prev[k] = i;
      const rr = table.rank(sym[i], sym[k]);
      if (rr >= 0) heapPush(rr * POS + i);
    }
    const p = prev[i];
    if (p >= 0) {
      const rl = table.rank(sym[p], sym[i]);
      if (rl >= 0) heapPush(rl * POS + p);
    }
  }
  for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
}
