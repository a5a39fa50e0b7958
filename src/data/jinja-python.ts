import { Template } from '@huggingface/jinja';

/**
 * Python string semantics that `@huggingface/jinja` (0.5.x) gets wrong, put right in the parsed
 * template so that chat templates render as transformers (Python Jinja2) renders them.
 *
 * The library's `str.strip / lstrip / rstrip` ignore their argument (`content.lstrip('\n')`, in
 * Qwen3's template, strips every leading space too) and strip JavaScript's whitespace, which is
 * not Python's (JS strips U+FEFF, Python does not; Python strips U+001C–U+001F and U+0085, JS
 * does not); its `trim` filter likewise takes no characters. Its string builtins live on a class
 * it does not export, so rather than patch the library, `compileTemplate` rewrites those calls in
 * the parsed template (a plain AST of `{ type, … }` nodes the interpreter dispatches on by type)
 * into calls of one function passed with every render:
 *
 *   X.strip(args…)  →  __troupe_str__('strip', X, args…)      (lstrip, rstrip alike)
 *   X | trim(args…) →  __troupe_str__('trim', X, args…)
 */
export const PY_STR_FUNCTION = '__troupe_str__';

/** Python's `str.isspace` characters: what `str.strip()` strips with no argument. */
const PY_WHITESPACE = new Set(
  [
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
    0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f,
    0x205f, 0x3000,
  ].map((c) => String.fromCodePoint(c)),
);

type Side = 'both' | 'left' | 'right';

/** Python's `s.strip(chars)` / `lstrip` / `rstrip`: `chars` None strips whitespace. */
export function pyStrip(s: string, chars: string | null | undefined, side: Side = 'both'): string {
  const set = chars === null || chars === undefined ? PY_WHITESPACE : new Set(Array.from(chars));
  const cps = Array.from(s); // code points, as Python indexes a str
  let lo = 0;
  let hi = cps.length;
  if (side !== 'right') while (lo < hi && set.has(cps[lo])) lo++;
  if (side !== 'left') while (hi > lo && set.has(cps[hi - 1])) hi--;
  return cps.slice(lo, hi).join('');
}

const SIDES: Record<string, Side> = {
  strip: 'both',
  lstrip: 'left',
  rstrip: 'right',
  trim: 'both',
};

/** The function the rewritten calls reach: `(method, receiver, chars?)`. */
function pyStr(method: string, receiver: unknown, chars?: unknown, ...rest: unknown[]): string {
  if (typeof receiver !== 'string') {
    const what =
      receiver === undefined ? 'undefined' : receiver === null ? 'None' : typeof receiver;
    throw new TypeError(
      method === 'trim'
        ? `the trim filter needs a string, got ${what}`
        : `'${what}' object has no attribute '${method}'`,
    );
  }
  if (rest.length > 0 || (chars !== undefined && chars !== null && typeof chars !== 'string')) {
    throw new TypeError(`${method}() takes at most one string argument`);
  }
  return pyStrip(receiver, chars as string | null | undefined, SIDES[method]);
}

interface Node {
  type: string;
  [key: string]: unknown;
}

const isNode = (x: unknown): x is Node =>
  typeof x === 'object' && x !== null && typeof (x as Node).type === 'string';

const ident = (value: string): Node => ({ type: 'Identifier', value });
const str = (value: string): Node => ({ type: 'StringLiteral', value });
const call = (method: string, receiver: unknown, args: unknown[]): Node => ({
  type: 'CallExpression',
  callee: ident(PY_STR_FUNCTION),
  args: [str(method), receiver, ...args],
});

/** The replacement of one node, when it is a call this module puts right. */
function rewrite(n: Node): Node | undefined {
  if (n.type === 'CallExpression') {
    const callee = n['callee'];
    if (
      isNode(callee) &&
      callee.type === 'MemberExpression' &&
      !callee['computed'] &&
      isNode(callee['property']) &&
      callee['property'].type === 'Identifier'
    ) {
      const method = callee['property']['value'] as string;
      if (method === 'strip' || method === 'lstrip' || method === 'rstrip')
        return call(method, callee['object'], n['args'] as unknown[]);
    }
  }
  if (n.type === 'FilterExpression') {
    const f = n['filter'];
    if (isNode(f) && f.type === 'Identifier' && f['value'] === 'trim')
      return call('trim', n['operand'], []);
    if (
      isNode(f) &&
      f.type === 'CallExpression' &&
      isNode(f['callee']) &&
      f['callee'].type === 'Identifier' &&
      f['callee']['value'] === 'trim'
    )
      return call('trim', n['operand'], f['args'] as unknown[]);
  }
  return undefined;
}

/** Rewrite every such call below `node`, in place (children first, so nested calls are kept). */
function walk(node: unknown): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = walk(node[i]);
    return node;
  }
  if (node instanceof Map) {
    // An object literal's entries: key and value nodes, in order.
    const entries = [...node.entries()].map(([k, v]) => [walk(k), walk(v)] as const);
    node.clear();
    for (const [k, v] of entries) node.set(k, v);
    return node;
  }
  if (!isNode(node) && !(typeof node === 'object' && node !== null)) return node;
  const obj = node as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (typeof v === 'object' && v !== null) obj[key] = walk(v);
  }
  return isNode(node) ? (rewrite(node) ?? node) : node;
}

/** A parsed template with Python's string methods (render it with `pythonGlobals()` in scope). */
export function compileTemplate(source: string): Template {
  const t = new Template(source);
  walk(t.parsed);
  return t;
}

/** The variables every render of a `compileTemplate` template needs. */
export function pythonGlobals(): Record<string, unknown> {
  return { [PY_STR_FUNCTION]: pyStr };
}
