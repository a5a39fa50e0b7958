import type { ModelConfig } from '../../src/policy/config.js';
import type { Tensor32 } from '../../src/policy/model/causal-lm.js';

/**
 * A slow, obvious float64 transformer written from the papers, over Troupe's parameter layout
 * (weights [in, out]). It shares no code with the tfjs model: it is the reference the model's
 * forward is checked against.
 *
 * ids, mask: [B][T] (mask 1 = real token). Returns hidden [B·T·d] after the final norm and
 * logits [B·T·V]. Rows at padding positions are not meaningful.
 */
export function referenceForward(
  c: ModelConfig,
  state: Map<string, Tensor32>,
  ids: number[][],
  mask: number[][],
): { hidden: Float64Array; logits: Float64Array } {
  const B = ids.length;
  const T = ids[0].length;
  const d = c.hidden;
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
        let v = W('embed.weight')[ids[b][t] * d + i];
        if (c.positions === 'learned') v += W('pos_embed.weight')[pos[t] * d + i];
        row.push(v);
      }
      x.push(row);
    }
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
      if (c.positions === 'rope') {
        for (let t = 0; t < T; t++) {
          for (let h = 0; h < c.heads; h++) rope(q[t], h * hd, hd, pos[t], c.ropeTheta);
          for (let h = 0; h < c.kvHeads; h++) rope(k[t], h * hd, hd, pos[t], c.ropeTheta);
        }
      }
      const att: number[][] = [];
      for (let t = 0; t < T; t++) {
        const out = new Array(c.heads * hd).fill(0);
        for (let h = 0; h < c.heads; h++) {
          const g = Math.floor(h / (c.heads / c.kvHeads)); // the key/value head this query head uses
          const allowed: number[] = [];
          for (let j = 0; j <= t; j++) if (mask[b][j]) allowed.push(j);
          if (allowed.length === 0) continue; // a padding query with nothing to see
          const s = allowed.map((j) => {
            let dot = 0;
            for (let i = 0; i < hd; i++) dot += q[t][h * hd + i] * k[j][g * hd + i];
            return dot / Math.sqrt(hd);
          });
          const m = Math.max(...s);
          const e = s.map((z) => Math.exp(z - m));
          const z = e.reduce((u, w) => u + w, 0);
          allowed.forEach((j, n) => {
            for (let i = 0; i < hd; i++) out[h * hd + i] += (e[n] / z) * v[j][g * hd + i];
          });
        }
        att.push(out);
      }
      x = x.map((r, t) =>
        add(
          r,
          lin(
            att[t],
            W(`${pre}.attn.o.weight`),
            has(`${pre}.attn.o.bias`) ? W(`${pre}.attn.o.bias`) : null,
          ),
        ),
      );
      const m = x.map((r) => normRow(c, r, `${pre}.mlp_norm`, W, has));
      const inner = m.map((r) => {
        const up = lin(
          r,
          W(`${pre}.mlp.up.weight`),
          has(`${pre}.mlp.up.bias`) ? W(`${pre}.mlp.up.bias`) : null,
        );
        if (c.mlp === 'gelu') {
          return up.map(
            (u) => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3))),
          );
        }
        const gate = lin(r, W(`${pre}.mlp.gate.weight`), null);
        return gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      });
      x = x.map((r, t) =>
        add(
          r,
          lin(
            inner[t],
            W(`${pre}.mlp.down.weight`),
            has(`${pre}.mlp.down.bias`) ? W(`${pre}.mlp.down.bias`) : null,
          ),
        ),
      );
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
        logits[(b * T + t) * c.vocabSize + o] = s;
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
  if (c.norm === 'rmsnorm') {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.normEps)) * g[i]);
  }
  const mu = x.reduce((s, v) => s + v, 0) / x.length;
  const varr = x.reduce((s, v) => s + (v - mu) ** 2, 0) / x.length;
  const beta = has(`${prefix}.bias`) ? W(`${prefix}.bias`) : null;
  return x.map((v, i) => ((v - mu) / Math.sqrt(varr + c.normEps)) * g[i] + (beta ? beta[i] : 0));
}

/** Rotate head [off, off + hd) of `x` in place, HF rotate-half layout. */
function rope(x: number[], off: number, hd: number, p: number, theta: number): void {
  const half = hd / 2;
  for (let i = 0; i < half; i++) {
    const angle = p / theta ** ((2 * i) / hd);
    const x1 = x[off + i];
    const x2 = x[off + i + half];
    x[off + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
    x[off + i + half] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
  }
}
