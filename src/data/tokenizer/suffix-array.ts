/**
 * Suffix array, LCP array and the internal nodes of the suffix tree (LCP intervals), over code
 * points: what SentencePiece's and HF's Unigram trainers get from esaxx to seed their pieces.
 */

/** The suffix array of `text` by prefix doubling: O(n log² n), enough for a trainer's words. */
export function suffixArray(text: Int32Array): Int32Array {
  const n = text.length;
  const sa = Int32Array.from({ length: n }, (_, i) => i);
  let rank = Int32Array.from(text);
  let tmp = new Int32Array(n);
  for (let k = 1; n > 1; k *= 2) {
    const r = rank;
    const second = (i: number) => (i + k < n ? r[i + k] : -1);
    const order = Array.from(sa).sort((a, b) => r[a] - r[b] || second(a) - second(b));
    sa.set(order);
    tmp[sa[0]] = 0;
    for (let i = 1; i < n; i++) {
      const a = sa[i - 1];
      const b = sa[i];
      tmp[b] = tmp[a] + (r[a] !== r[b] || second(a) !== second(b) ? 1 : 0);
    }
    [rank, tmp] = [tmp, rank];
    if (rank[sa[n - 1]] === n - 1) break;
  }
  return sa;
}

/** lcp[i]: the longest common prefix of suffixes sa[i − 1] and sa[i] (Kasai et al.); lcp[0] = 0. */
export function lcpArray(text: Int32Array, sa: Int32Array): Int32Array {
  const n = text.length;
  const rank = new Int32Array(n);
  for (let i = 0; i < n; i++) rank[sa[i]] = i;
  const lcp = new Int32Array(n);
  let h = 0;
  for (let i = 0; i < n; i++) {
    if (rank[i] > 0) {
      const j = sa[rank[i] - 1];
      while (i + h < n && j + h < n && text[i + h] === text[j + h]) h++;
      lcp[rank[i]] = h;
      if (h > 0) h--;
    } else h = 0;
  }
  return lcp;
}

/**
 * Calls `fn(start, length, count)` once for each internal node of the suffix tree: a substring
 * that occurs `count` ≥ 2 times and is followed by different characters (or the end), given by
 * one occurrence's start. The LCP intervals, found bottom-up with a stack (Abouelhoda et al.).
 */
export function suffixIntervals(
  text: Int32Array,
  fn: (start: number, length: number, count: number) => void,
): void {
  const n = text.length;
  if (n === 0) return;
  const sa = suffixArray(text);
  const lcp = lcpArray(text, sa);
  const depth: number[] = [0];
  const left: number[] = [0];
  for (let i = 1; i <= n; i++) {
    const h = i < n ? lcp[i] : 0;
    let lb = i - 1;
    while (h < depth[depth.length - 1]) {
      const d = depth.pop()!;
      lb = left.pop()!;
      fn(sa[lb], d, i - lb);
    }
    if (h > depth[depth.length - 1]) {
      depth.push(h);
      left.push(lb);
    }
  }
}
