import { TroupeError } from '../../errors.js';
import type { ModelConfig } from '../config.js';
import type { HeadName } from '../params.js';
import { FAMILIES, HEADS, hfShape, plan, type Rule } from './hf-rules.js';
import { concatColumns, sameBits, splitColumns, transpose2d } from './layout.js';
import { badCheckpoint, fmtShape, type StateDict, sameShape, type Tensor32 } from './tensor32.js';

/**
 * Troupe state dict ↔ Hugging Face state dict, by the rules of hf-rules.ts. Both directions check
 * every name and shape first; the conversions copy bits, so a round trip is exact.
 */

/** "a, b, c and 4 more" */
function listNames(names: string[]): string {
  const shown = names.slice(0, 10).join(', ');
  return names.length > 10 ? `${shown} and ${names.length - 10} more` : shown;
}

function checkShape(
  source: string,
  what: string,
  t: Tensor32,
  want: readonly number[],
  details: Record<string, unknown>,
) {
  if (!sameShape(t.shape, want)) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `${source}: tensor ${what} has shape ${fmtShape(t.shape)}, expected ${fmtShape(want)}`,
      {
        details: { ...details, expected: [...want], got: [...t.shape] },
      },
    );
  }
}

function mismatch(source: string, family: string, missing: string[], unexpected: string[]) {
  const parts = [
    missing.length > 0 ? `missing ${missing.length}: ${listNames(missing)}` : '',
    unexpected.length > 0 ? `unexpected ${unexpected.length}: ${listNames(unexpected)}` : '',
  ].filter((s) => s !== '');
  return badCheckpoint(source, `tensors do not match the ${family} config; ${parts.join('; ')}`, {
    missing: missing.slice(0, 10),
    unexpected: unexpected.slice(0, 10),
  });
}

export interface HfNameOptions {
  /** Names the state dict's origin in errors (a file or directory). */
  source?: string;
  /** Heads that must be present; any head found is imported/exported regardless. */
  heads?: readonly HeadName[];
}

/**
 * Import an HF state dict: every tensor of `paramSpecs(config)` must be there with its shape, and
 * nothing else but known buffers (skipped) and a tied lm_head equal to the embedding. Tensors
 * whose layout is unchanged are shared with `hf`, not copied.
 */
export function fromHfStateDict(
  config: ModelConfig,
  hf: ReadonlyMap<string, Tensor32>,
  options: HfNameOptions = {},
): StateDict {
  const source = options.source ?? 'HF state dict';
  const fam = FAMILIES[config.family];
  const byCanon = new Map<string, { name: string; t: Tensor32 }>();
  for (const [name, t] of hf) {
    const canon = fam.canonical(name);
    const dup = byCanon.get(canon);
    if (dup !== undefined)
      throw badCheckpoint(source, `appears twice (as '${dup.name}' and '${name}')`, {
        tensor: canon,
      });
    byCanon.set(canon, { name, t });
  }
  const heads = HEADS.filter((h) => byCanon.has(`${h}.weight`) || options.heads?.includes(h));
  // a reward model saved as …ForSequenceClassification has a score head and no LM head
  const lmHead = config.tieEmbeddings || byCanon.has('lm_head.weight') || !heads.includes('score');
  const { rules, shapes } = plan(config, heads, { lmHead });
  const missing = rules
    .filter((r) => !byCanon.has(r.hf))
    .map((r) => `${r.hf} (→ ${r.ours.join(', ')})`);
  const used = new Set(rules.map((r) => r.hf));
  // A tied checkpoint may still carry lm_head (= the embedding); without the embedding, the
  // name-level report below is the clearer error.
  const tied = byCanon.get('lm_head.weight');
  const emb = byCanon.get(fam.embedding)?.t;
  if (config.tieEmbeddings && tied !== undefined && emb !== undefined) {
    if (!sameShape(emb.shape, tied.t.shape) || !sameBits(emb.data, tied.t.data)) {
      throw badCheckpoint(
        source,
        `differs from the embedding '${fam.embedding}', but the config ties them (set tie_word_embeddings: false to keep a separate head)`,
        { tensor: tied.name },
      );
    }
    used.add('lm_head.weight');
  }
  const unexpected = [...byCanon]
    .filter(([c]) => !used.has(c) && !fam.isBuffer(c))
    .map(([, v]) => v.name);
  if (missing.length > 0 || unexpected.length > 0)
    throw mismatch(source, config.family, missing, unexpected);

  const out: StateDict = new Map();
  for (const r of rules) {
    const { name, t } = byCanon.get(r.hf)!;
    checkShape(source, `'${name}' (→ ${r.ours.join(', ')})`, t, hfShape(r, shapes), {
      file: source,
      tensor: name,
      name: r.ours.join(','),
    });
    const ours = r.ours.map((n) => shapes.get(n)!);
    for (const [k, data] of importData(r, t, ours).entries()) {
      out.set(r.ours[k], { shape: [...ours[k]], data });
    }
  }
  return out;
}

/** Our tensors' data from one HF tensor (shape checked): one array per name of `r.ours`. */
export function importData(
  r: Rule,
  t: Tensor32,
  ours: readonly (readonly number[])[],
): Float32Array[] {
  if (r.layout === 'same') return [t.data];
  if (r.layout === 'transpose') return [transpose2d(t.data, t.shape[0], t.shape[1])]; // [out, in] → [in, out]
  if (r.layout === 'stack') {
    // [Σw, in] → rows w_k each, transposed to [in, w_k]
    const inDim = t.shape[1];
    let row = 0;
    return ours.map((s) => {
      const w = s[1];
      const block = t.data.subarray(row * inDim, (row + w) * inDim);
      row += w;
      return transpose2d(block, w, inDim);
    });
  }
  const rows = t.shape.length === 1 ? 1 : t.shape[0];
  return splitColumns(
    t.data,
    ours.map((s) => s[s.length - 1]),
    rows,
  );
}

/** One HF tensor's data (of HF `shape`) from ours. */
function exportData(r: Rule, parts: Tensor32[], shape: number[]): Float32Array {
  if (r.layout === 'same') return parts[0].data;
  if (r.layout === 'transpose') return transpose2d(parts[0].data, shape[1], shape[0]); // [in, out] → [out, in]
  if (r.layout === 'stack') {
    // [in, w_k] each → [w_k, in], stacked by rows into [Σw, in]
    const out = new Float32Array(shape[0] * shape[1]);
    let offset = 0;
    for (const p of parts) {
      const block = transpose2d(p.data, p.shape[0], p.shape[1]);
      out.set(block, offset);
      offset += block.length;
    }
    return out;
  }
  const widths = parts.map((p) => p.shape[p.shape.length - 1]);
  return concatColumns(
    parts.map((p) => p.data),
    widths,
    shape.length === 1 ? 1 : shape[0],
  );
}

/** Export to HF names and layouts: the inverse of `fromHfStateDict` (GPT-2 with `transformer.`). */
export function toHfStateDict(
  config: ModelConfig,
  ours: ReadonlyMap<string, Tensor32>,
  options: HfNameOptions = {},
): StateDict {
  const source = options.source ?? 'state dict';
  const heads = HEADS.filter((h) => ours.has(`${h}.weight`) || options.heads?.includes(h));
  const lmHead = config.tieEmbeddings || ours.has('lm_head.weight') || !heads.includes('score');
  const { rules, shapes } = plan(config, heads, { lmHead });
  const missing = [...shapes.keys()].filter((n) => !ours.has(n));
  const unexpected = [...ours.keys()].filter((n) => !shapes.has(n));
  if (missing.length > 0 || unexpected.length > 0)
    throw mismatch(source, config.family, missing, unexpected);
  for (const [n, want] of shapes)
    checkShape(source, `'${n}'`, ours.get(n)!, want, { tensor: n, name: n });

  const out: StateDict = new Map();
  for (const r of rules) {
    const shape = hfShape(r, shapes);
    out.set(r.hf, {
      shape,
      data: exportData(
        r,
        r.ours.map((n) => ours.get(n)!),
        shape,
      ),
    });
  }
  return out;
}

/** True for HF buffers `fromHfStateDict` skips: loaders need not read them. */
export function isHfBuffer(config: ModelConfig, hfName: string): boolean {
  const fam = FAMILIES[config.family];
  return fam.isBuffer(fam.canonical(hfName));
}
