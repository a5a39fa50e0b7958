import { TroupeError } from '../../errors.js';
import type { ModelConfig } from '../config.js';
import { type HeadName, headSpecs, paramSpecs } from '../params.js';

/**
 * Troupe state dict (names and [in, out] layouts of params.ts) ↔ Hugging Face state dict.
 *
 * A rule ties one HF tensor to one or more of ours:
 *   same       identical shape and data           norms, biases, embeddings, GPT-2 Conv1D [in, out]
 *   transpose  ours [in, out] ↔ HF [out, in]      nn.Linear weights (Llama/Qwen2, every lm_head, heads)
 *   concat     ours q, k, v [d, w] ↔ HF [d, Σw]   GPT-2 c_attn (biases: [w] ↔ [Σw])
 *   stack      ours q, k, v [d, w] ↔ HF [Σw, d]   Phi-3 qkv_proj and gate_up_proj (nn.Linear rows)
 */
export type Layout = 'same' | 'transpose' | 'concat' | 'stack';
export interface Rule {
  readonly hf: string;
  readonly ours: readonly string[];
  readonly layout: Layout;
}

export interface FamilyNames {
  /** Every rule the family can use; those whose tensors a config lacks are dropped. */
  rules(c: ModelConfig): Rule[];
  /** The name an imported tensor is matched under (GPT-2: `transformer.` made explicit). */
  canonical(hfName: string): string;
  /** Non-parameter buffers some checkpoints carry; skipped on import. */
  isBuffer(canonicalName: string): boolean;
  /** The HF token embedding, which a tied checkpoint's redundant lm_head must equal. */
  embedding: string;
}

export const HEADS: readonly HeadName[] = ['value_head', 'score'];
/** Names outside the base model's prefix: the LM head and the actor heads. */
const TOP_LEVEL = new Set(['lm_head.weight', ...HEADS.map((h) => `${h}.weight`)]);

const rule = (hf: string, ours: string | string[], layout: Layout = 'same'): Rule => ({
  hf,
  ours: typeof ours === 'string' ? [ours] : ours,
  layout,
});

const GPT2: FamilyNames = {
  rules(c) {
    const t = 'transformer.';
    const out = [
      rule(`${t}wte.weight`, 'embed.weight'),
      rule(`${t}wpe.weight`, 'pos_embed.weight'),
    ];
    const wb = (hf: string, ours: string) =>
      ['weight', 'bias'].map((s) => rule(`${hf}.${s}`, `${ours}.${s}`));
    for (let i = 0; i < c.layers; i++) {
      const [h, p] = [`${t}h.${i}`, `layers.${i}`];
      const qkv = (s: string) => ['q', 'k', 'v'].map((x) => `${p}.attn.${x}.${s}`);
      out.push(
        ...wb(`${h}.ln_1`, `${p}.attn_norm`),
        rule(`${h}.attn.c_attn.weight`, qkv('weight'), 'concat'),
        rule(`${h}.attn.c_attn.bias`, qkv('bias'), 'concat'),
        ...wb(`${h}.attn.c_proj`, `${p}.attn.o`),
        ...wb(`${h}.ln_2`, `${p}.mlp_norm`),
        ...wb(`${h}.mlp.c_fc`, `${p}.mlp.up`),
        ...wb(`${h}.mlp.c_proj`, `${p}.mlp.down`),
      );
    }
    out.push(
      ...wb(`${t}ln_f`, 'final_norm'),
      rule('lm_head.weight', 'lm_head.weight', 'transpose'),
    );
    return out;
  },
  canonical: (n) => (TOP_LEVEL.has(n) || n.startsWith('transformer.') ? n : `transformer.${n}`),
  isBuffer: (n) => /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(n),
  embedding: 'transformer.wte.weight',
};

/**
 * The per-layer norms of the Llama-style layouts. Llama's `post_attention_layernorm` is the MLP's
 * pre-norm; with Gemma's sandwich norms it is the attention output's norm and
 * `pre_feedforward_layernorm` is the MLP's.
 */
function llamaNorms(c: ModelConfig, h: string, p: string): Rule[] {
  const out = [
    rule(`${h}.input_layernorm.weight`, `${p}.attn_norm.weight`),
    rule(`${h}.self_attn.q_norm.weight`, `${p}.attn.q_norm.weight`),
    rule(`${h}.self_attn.k_norm.weight`, `${p}.attn.k_norm.weight`),
  ];
  if (c.sandwichNorms) {
    out.push(
      rule(`${h}.post_attention_layernorm.weight`, `${p}.attn_out_norm.weight`),
      rule(`${h}.pre_feedforward_layernorm.weight`, `${p}.mlp_norm.weight`),
      rule(`${h}.post_feedforward_layernorm.weight`, `${p}.mlp_out_norm.weight`),
    );
  } else {
    out.push(rule(`${h}.post_attention_layernorm.weight`, `${p}.mlp_norm.weight`));
  }
  return out;
}

/**
 * The Llama-style layout: `model.` embeddings, per layer the norms and `projections(c, h, p)`
 * (h the HF layer prefix, p ours), the final norm and an untied `lm_head`.
 */
function llamaLayout(projections: (c: ModelConfig, h: string, p: string) => Rule[]): FamilyNames {
  return {
    rules(c) {
      const out = [rule('model.embed_tokens.weight', 'embed.weight')];
      for (let i = 0; i < c.layers; i++) {
        const [h, p] = [`model.layers.${i}`, `layers.${i}`];
        out.push(...llamaNorms(c, h, p), ...projections(c, h, p));
      }
      out.push(rule('model.norm.weight', 'final_norm.weight'));
      out.push(rule('lm_head.weight', 'lm_head.weight', 'transpose'));
      return out;
    },
    canonical: (n) => n,
    isBuffer: (n) => /(^|\.)rotary_emb\.inv_freq$/.test(n),
    embedding: 'model.embed_tokens.weight',
  };
}

/** Llama, Qwen, Mistral, Gemma: one nn.Linear per projection (weights [out, in], optional biases). */
const LLAMA = llamaLayout((_c, h, p) => {
  const out: Rule[] = [];
  const linear = (hf: string, ours: string) =>
    out.push(
      rule(`${hf}.weight`, `${ours}.weight`, 'transpose'),
      rule(`${hf}.bias`, `${ours}.bias`),
    );
  for (const x of ['q', 'k', 'v', 'o']) linear(`${h}.self_attn.${x}_proj`, `${p}.attn.${x}`);
  for (const x of ['gate', 'up', 'down']) linear(`${h}.mlp.${x}_proj`, `${p}.mlp.${x}`);
  return out;
});

/** Phi-3: Llama names, but q/k/v as one `qkv_proj` and gate/up as one `gate_up_proj`. */
const PHI3 = llamaLayout((_c, h, p) => [
  rule(
    `${h}.self_attn.qkv_proj.weight`,
    ['q', 'k', 'v'].map((x) => `${p}.attn.${x}.weight`),
    'stack',
  ),
  rule(`${h}.self_attn.o_proj.weight`, `${p}.attn.o.weight`, 'transpose'),
  rule(`${h}.mlp.gate_up_proj.weight`, [`${p}.mlp.gate.weight`, `${p}.mlp.up.weight`], 'stack'),
  rule(`${h}.mlp.down_proj.weight`, `${p}.mlp.down.weight`, 'transpose'),
]);

export const FAMILIES: Readonly<Record<ModelConfig['family'], FamilyNames>> = {
  gpt2: GPT2,
  llama: LLAMA,
  phi3: PHI3,
};

/**
 * Rules for the config's parameters plus `heads`, each of our names covered exactly once.
 * `lmHead: false` leaves out an untied LM head (a sequence classifier has none).
 */
export function plan(c: ModelConfig, heads: readonly HeadName[], opts: { lmHead?: boolean } = {}) {
  const shapes = new Map<string, readonly number[]>();
  for (const s of [...paramSpecs(c), ...heads.flatMap((h) => headSpecs(c, h))])
    if (opts.lmHead !== false || s.name !== 'lm_head.weight') shapes.set(s.name, s.shape);
  const headRules = heads.map((h) => rule(`${h}.weight`, `${h}.weight`, 'transpose'));
  const rules = [...FAMILIES[c.family].rules(c), ...headRules].filter((r) =>
    r.ours.every((n) => shapes.has(n)),
  );
  const covered = new Set(rules.flatMap((r) => r.ours));
  const orphan = [...shapes.keys()].find((n) => !covered.has(n));
  if (orphan !== undefined) {
    throw new TroupeError(
      'UNSUPPORTED',
      `Parameter '${orphan}' has no Hugging Face name in the ${c.family} layout`,
    );
  }
  return { rules, shapes };
}

/** The HF shape a rule expects from our shapes. */
export function hfShape(r: Rule, shapes: ReadonlyMap<string, readonly number[]>): number[] {
  const ours = r.ours.map((n) => shapes.get(n)!);
  if (r.layout === 'same') return [...ours[0]];
  if (r.layout === 'transpose') return [ours[0][1], ours[0][0]];
  const width = ours.reduce((a, s) => a + s[s.length - 1], 0);
  if (r.layout === 'stack') return [width, ours[0][0]];
  return ours[0].length === 1 ? [width] : [ours[0][0], width];
}
