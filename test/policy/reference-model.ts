import type { ModelConfig, RopeScaling } from '../../src/policy/config.js';
import type { Tensor32 } from '../../src/policy/model/causal-lm.js';

/**
 * A slow, obvious float64 transformer written from the papers, over Troupe's parameter layout
 * (weights [in, out]). It shares no code with the tfjs model: it is the reference the model's
 * forward is checked against.
 *
 * Covers every switch of ModelConfig: q/k norms, (1 + w) and sandwich norms, GeGLU, embedding
 * and query scales, soft-caps, sliding windows per layer kind, RoPE scaling (written again here
 * from the papers and transformers' formulas), a local RoPE base and partial rotary.
 *
 * ids, mask: [B][T] (mask 1 = real token). Returns hidden [B·T·d] after the final norm and
 * logits [B·T·V]. Rows at padding positions are not meaningful.
 */
export function referenceForward(
  c: ModelConfig,
  state: Map<string, Tensor32>,
  ids: number[][],
  mask: number[][],
  /**
   * Training-time dropout masks by purpose (`embed`, `attn/{l}`, `resid_attn/{l}`,
   * `resid_mlp/{l}`), in the model's shapes: [B, T, d], and [B, KV, rep·T, T] for attention.
   */
  dropout?: (purpose: string, shape: number[], rate: number) => ArrayLike<number>,
): { hidden: Float64Array; logits: Float64Array } {
  const B = ids.length;
  const T = ids[0].length;
  const d = c.hidden;
  const rep = c.heads / c.kvHeads;
  const masks = new Map<string, ArrayLike<number> | null>();
  /** The mask of `purpose` (drawn once for the whole batch), or null without dropout. */
  const maskOf = (purpose: string, shape: number[], rate: number) => {
    if (!dropout || rate === 0) return null;
    if (!masks.has(purpose)) masks.set(purpose, dropout(purpose, shape, rate));
    return masks.get(purpose)!;
  };
  const hd = c.headDim;
  const W = (n: string) => {
    const t = state.get(n);
    if (!t) throw new Error(`reference: missing ${n}`);
    return t.data;
  };
  const has = (n: string) => state.has(n);
  const hidden = new Float64Array(B * T * d);
  const logits = new Float64Array(B * T * c.vocabSize);

  for (let b = 0; b < B; b++) {
    // Positions: real tokens counted from 0; padding never attended to.
    const pos: number[] = [];
    let p = 0;
    for (let t = 0; t < T; t++) pos.push(mask[b][t] ? p++ : 0);
    // x[t] = embedding (+ learned position)
    let x: number[][] = [];
    for (let t = 0; t < T; t++) {
      const row: number[] = [];
      for (let i = 0; i < d; i++) {
        let v = W('embed.weight')[ids[b][t] * d + i] * c.embedScale;
        if (c.positions === 'learned') v += W('pos_embed.weight')[pos[t] * d + i];
        const m = maskOf('embed', [B, T, d], c.dropout.embedding);
        row.push(m ? v * m[(b * T + t) * d + i] : v);
      }
      x.push(row);
    }
    const residual = (rows: number[][], purpose: string) => {
      const m = maskOf(purpose, [B, T, d], c.dropout.residual);
      return m ? rows.map((r, t) => r.map((v, i) => v * m[(b * T + t) * d + i])) : rows;
    };
    for (let l = 0; l < c.layers; l++) {
      const pre = `layers.${l}`;
      const a = x.map((r) => normRow(c, r, `${pre}.attn_norm`, W, has));
      const q = a.map((r) =>
        lin(
          r,
          W(`${pre}.attn.q.weight`),
          has(`${pre}.attn.q.bias`) ? W(`${pre}.attn.q.bias`) : null,
        ),
      );
      const k = a.map((r) =>
        lin(
          r,
          W(`${pre}.attn.k.weight`),
          has(`${pre}.attn.k.bias`) ? W(`${pre}.attn.k.bias`) : null,
        ),
      );
      const v = a.map((r) =>
        lin(
          r,
          W(`${pre}.attn.v.weight`),
          has(`${pre}.attn.v.bias`) ? W(`${pre}.attn.v.bias`) : null,
        ),
      );
      const sliding =
        (c.layerTypes?.[l] ?? (c.slidingWindow === undefined ? 'full' : 'sliding')) === 'sliding';
      if (c.qkNorm) {
        for (let t = 0; t < T; t++) {
          q[t] = headNorm(c, q[t], c.heads, hd, W(`${pre}.attn.q_norm.weight`));
          k[t] = headNorm(c, k[t], c.kvHeads, hd, W(`${pre}.attn.k_norm.weight`));
        }
      }
      if (c.positions === 'rope') {
        const local = sliding && c.ropeLocalTheta !== undefined;
        const theta = local ? (c.ropeLocalTheta as number) : c.ropeTheta;
        const rot = Math.trunc(hd * c.partialRotary);
        const rowLength = Math.max(...pos) + 1;
        const { inv, scale } = invFreq(
          rot,
          theta,
          local ? undefined : c.ropeScaling,
          c.maxPositions,
          rowLength,
        );
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < c.heads; h++) rope(q[t], h * hd, rot, pos[t], inv, scale);
          for (let h = 0; h < c.kvHeads; h++) rope(k[t], h * hd, rot, pos[t], inv, scale);
        }
      }
      const att: number[][] = [];
      for (let t = 0; t < T; t++) {
        const out = new Array(c.heads * hd).fill(0);
        for (let h = 0; h < c.heads; h++) {
          const g = Math.floor(h / (c.heads / c.kvHeads)); // the key/value head this query head uses
          const allowed: number[] = [];
          for (let j = 0; j <= t; j++) {
            const inWindow = !sliding || pos[t] - pos[j] < (c.slidingWindow as number);
            if (mask[b][j] && inWindow) allowed.push(j);
          }
          if (allowed.length === 0) continue; // a padding query with nothing to see
          const s = allowed.map((j) => {
            let dot = 0;
            for (let i = 0; i < hd; i++) dot += q[t][h * hd + i] * k[j][g * hd + i];
            const z = dot * c.queryScale;
            return c.attnSoftcap === undefined ? z : c.attnSoftcap * Math.tanh(z / c.attnSoftcap);
          });
          const m = Math.max(...s);
          const e = s.map((z) => Math.exp(z - m));
          const z = e.reduce((u, w) => u + w, 0);
          const am = maskOf(`attn/${l}`, [B, c.kvHeads, rep * T, T], c.dropout.attention);
          const row = ((b * c.kvHeads + g) * rep * T + (h % rep) * T + t) * T; // its mask row
          allowed.forEach((j, n) => {
            const p = (e[n] / z) * (am ? am[row + j] : 1);
            for (let i = 0; i < hd; i++) out[h * hd + i] += p * v[j][g * hd + i];
          });
        }
        att.push(out);
      }
      const sandwich = (rows: number[][], prefix: string) =>
        c.sandwichNorms ? rows.map((r) => normRow(c, r, prefix, W, has)) : rows;
      const o = sandwich(
        att.map((r) =>
          lin(
            r,
            W(`${pre}.attn.o.weight`),
            has(`${pre}.attn.o.bias`) ? W(`${pre}.attn.o.bias`) : null,
          ),
        ),
        `${pre}.attn_out_norm`,
      );
      const oDrop = residual(o, `resid_attn/${l}`);
      x = x.map((r, t) => add(r, oDrop[t]));
      const m = x.map((r) => normRow(c, r, `${pre}.mlp_norm`, W, has));
      const gelu = (u: number) =>
        0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3)));
      const inner = m.map((r) => {
        const up = lin(
          r,
          W(`${pre}.mlp.up.weight`),
          has(`${pre}.mlp.up.bias`) ? W(`${pre}.mlp.up.bias`) : null,
        );
        if (c.mlp === 'gelu') return up.map(gelu);
        const gate = lin(
          r,
          W(`${pre}.mlp.gate.weight`),
          has(`${pre}.mlp.gate.bias`) ? W(`${pre}.mlp.gate.bias`) : null,
        );
        const act = c.mlp === 'swiglu' ? (g: number) => g / (1 + Math.exp(-g)) : gelu;
        return gate.map((gv, i) => act(gv) * up[i]);
      });
      const down = sandwich(
        inner.map((r) =>
          lin(
            r,
            W(`${pre}.mlp.down.weight`),
            has(`${pre}.mlp.down.bias`) ? W(`${pre}.mlp.down.bias`) : null,
          ),
        ),
        `${pre}.mlp_out_norm`,
      );
      const downDrop = residual(down, `resid_mlp/${l}`);
      x = x.map((r, t) => add(r, downDrop[t]));
    }
    for (let t = 0; t < T; t++) {
      const hrow = normRow(c, x[t], 'final_norm', W, has);
      hidden.set(hrow, (b * T + t) * d);
      for (let o = 0; o < c.vocabSize; o++) {
        let s = 0;
        for (let i = 0; i < d; i++) {
          s +=
            hrow[i] *
            (c.tieEmbeddings
              ? W('embed.weight')[o * d + i]
              : W('lm_head.weight')[i * c.vocabSize + o]);
        }
        const cap = c.finalSoftcap;
        logits[(b * T + t) * c.vocabSize + o] = cap === undefined ? s : cap * Math.tanh(s / cap);
      }
    }
  }
  return { hidden, logits };
}

/** y = x·W + b with W stored [in, out]. */
function lin(x: number[], w: Float32Array, b: Float32Array | null): number[] {
  const n = x.length;
  const out = w.length / n;
  const y: number[] = [];
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < n; i++) s += x[i] * w[i * out + o];
    y.push(s);
  }
  return y;
}

const add = (a: number[], b: number[]) => a.map((v, i) => v + b[i]);

function normRow(
  c: ModelConfig,
  x: number[],
  prefix: string,
  W: (n: string) => Float32Array,
  has: (n: string) => boolean,
): number[] {
  const g = W(`${prefix}.weight`);
  if (c.norm === 'rmsnorm') return rms(x, g, c.normEps, c.normUnitOffset);
  const mu = x.reduce((s, v) => s + v, 0) / x.length;
  const varr = x.reduce((s, v) => s + (v - mu) ** 2, 0) / x.length;
  const beta = has(`${prefix}.bias`) ? W(`${prefix}.bias`) : null;
  return x.map((v, i) => ((v - mu) / Math.sqrt(varr + c.normEps)) * g[i] + (beta ? beta[i] : 0));
}

function rms(x: number[], g: Float32Array, eps: number, unitOffset: boolean): number[] {
  const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * (unitOffset ? 1 + g[i] : g[i]));
}

/** RMSNorm of each of `heads` heads of width hd in `x`. */
function headNorm(
  c: ModelConfig,
  x: number[],
  heads: number,
  hd: number,
  g: Float32Array,
): number[] {
  const out: number[] = [];
  for (let h = 0; h < heads; h++)
    out.push(...rms(x.slice(h * hd, (h + 1) * hd), g, c.normEps, c.normUnitOffset));
  return out;
}

/**
 * Inverse frequencies θ^(−2i/dim) of a RoPE and its cos/sin scale, with each scaling as its
 * paper defines it: linear (positions ÷ factor), dynamic NTK (θ grown past the trained length),
 * YaRN (ramped blend of interpolated and extrapolated frequencies, scale 0.1·ln s + 1) and
 * Llama 3.1 (wavelength bands).
 */
function invFreq(
  dim: number,
  theta: number,
  s: RopeScaling | undefined,
  maxPositions: number,
  rowLength: number,
): { inv: number[]; scale: number } {
  const plain = (base: number) =>
    Array.from({ length: dim / 2 }, (_, i) => base ** ((-2 * i) / dim));
  if (!s) return { inv: plain(theta), scale: 1 };
  if (s.type === 'linear') return { inv: plain(theta).map((f) => f / s.factor), scale: 1 };
  if (s.type === 'dynamic') {
    const L = Math.max(rowLength, maxPositions);
    const base = theta * ((s.factor * L) / maxPositions - (s.factor - 1)) ** (dim / (dim - 2));
    return { inv: plain(base), scale: 1 };
  }
  if (s.type === 'llama3') {
    const lowWave = s.originalMaxPositions / s.lowFreqFactor;
    const highWave = s.originalMaxPositions / s.highFreqFactor;
    const inv = plain(theta).map((f) => {
      const wave = (2 * Math.PI) / f;
      if (wave < highWave) return f;
      if (wave > lowWave) return f / s.factor;
      const smooth =
        (s.originalMaxPositions / wave - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (f / s.factor) + smooth * f;
    });
    return { inv, scale: 1 };
  }
  // YaRN: dimension index where a frequency turns r times over the original context
  const dimFor = (r: number) =>
    (dim * Math.log(s.originalMaxPositions / (r * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = dimFor(s.betaFast ?? 32);
  let hi = dimFor(s.betaSlow ?? 1);
  if (s.truncate ?? true) {
    lo = Math.floor(lo);
    hi = Math.ceil(hi);
  }
  lo = Math.max(lo, 0);
  hi = Math.min(hi, dim - 1);
  if (lo === hi) hi += 0.001;
  const inv = plain(theta).map((f, i) => {
    const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
    return (f / s.factor) * ramp + f * (1 - ramp);
  });
  const scale = s.attentionFactor ?? (s.factor <= 1 ? 1 : 0.1 * Math.log(s.factor) + 1);
  return { inv, scale };
}

/** Rotate the first `rot` channels of head [off, off + hd) in place, HF rotate-half layout. */
function rope(
  x: number[],
  off: number,
  rot: number,
  p: number,
  inv: number[],
  scale: number,
): void {
  const half = rot / 2;
  for (let i = 0; i < half; i++) {
    const angle = p * inv[i];
    const cos = Math.cos(angle) * scale;
    const sin = Math.sin(angle) * scale;
    const x1 = x[off + i];
    const x2 = x[off + i + half];
    x[off + i] = x1 * cos - x2 * sin;
    x[off + i + half] = x2 * cos + x1 * sin;
  }
}
