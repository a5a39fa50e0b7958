/**
 * An example user reward module for `moduleSource` / `{ type: 'module' }`: the fraction of the
 * row's `keywords` (a list of strings) that the completion mentions, case-insensitive.
 */
export default async function score({ completions, ...columns }) {
  const keywords = columns.keywords ?? [];
  return completions.map((completion, i) => {
    const wanted = keywords[i] ?? [];
    if (wanted.length === 0) return 0;
    const text = completion.toLowerCase();
    const hits = wanted.filter((k) => text.includes(String(k).toLowerCase())).length;
    return hits / wanted.length;
  });
}
