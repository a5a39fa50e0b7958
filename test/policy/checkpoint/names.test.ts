import { describe, expect, it } from 'vitest';
import { RandomStream } from '../../../src/kernels/random.js';
import {
  fromHfStateDict,
  type Tensor32,
  toHfStateDict,
} from '../../../src/policy/checkpoint/index.js';
import { concatColumns, splitColumns, transpose2d } from '../../../src/policy/checkpoint/layout.js';
import { thrown } from '../../helpers/thrown.js';
import { bitsOf, expectSameState, GPT2, LLAMA, QWEN2, seededState } from './fixtures.js';

/** Element [r][c] of a row-major [rows, cols] tensor. */
const at = (t: Tensor32, r: number, c: number) => t.data[r * t.shape[t.shape.length - 1] + c];

describe('layout helpers', () => {
  it('transpose2d matches a plain loop on odd shapes', () => {
    for (const [rows, cols] of [
      [37, 70],
      [1, 5],
      [64, 33],
    ]) {
      const x = RandomStream.of({ seed: rows, step: 0, actor: 'test' }).normal(rows * cols);
      const want = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) want[c * rows + r] = x[r * cols + c];
      expect(bitsOf(transpose2d(x, rows, cols))).toEqual(bitsOf(want));
    }
  });

  it('splitColumns inverts concatColumns', () => {
    const parts = [2, 3, 1].map((w, k) =>
      RandomStream.of({ seed: k, step: 0, actor: 'test' }).normal(4 * w),
    );
    const whole = concatColumns(parts, [2, 3, 1], 4);
    expect(whole[1 * 6 + 2]).toBe(parts[1][1 * 3 + 0]); // row 1, first column of part 1
    splitColumns(whole, [2, 3, 1], 4).forEach((p, k) => {
      expect(bitsOf(p)).toEqual(bitsOf(parts[k]));
    });
  });
});

describe('GPT-2 names', () => {
  const ours = seededState(GPT2);
  const hf = toHfStateDict(GPT2, ours);
  const d = GPT2.hidden;

  it('exports transformer.-prefixed Conv1D tensors with q, k, v fused column-wise', () => {
    expect(hf.has('lm_head.weight')).toBe(false); // tied
    expect(hf.get('transformer.wte.weight')!.shape).toEqual([11, d]);
    expect(hf.get('transformer.wpe.weight')!.shape).toEqual([16, d]);
    const cAttn = hf.get('transformer.h.1.attn.c_attn.weight')!;
    expect(cAttn.shape).toEqual([d, 3 * d]);
    const [q, k, v] = ['q', 'k', 'v'].map((x) => ours.get(`layers.1.attn.${x}.weight`)!);
    for (let r = 0; r < d; r++) {
      for (let j = 0; j < d; j++) {
        expect(at(cAttn, r, j)).toBe(at(q, r, j));
        expect(at(cAttn, r, d + j)).toBe(at(k, r, j)); // column block [d:2d] is k
        expect(at(cAttn, r, 2 * d + j)).toBe(at(v, r, j));
      }
    }
    const bias = hf.get('transformer.h.1.attn.c_attn.bias')!;
    expect(Array.from(bias.data.subarray(d, 2 * d))).toEqual(
      Array.from(ours.get('layers.1.attn.k.bias')!.data),
    );
    // Conv1D is [in, out] like ours: no transpose.
    expect(hf.get('transformer.h.0.mlp.c_fc.weight')!.shape).toEqual([d, 4 * d]);
    expect(hf.get('transformer.h.0.mlp.c_proj.weight')!.data).toBe(
      ours.get('layers.0.mlp.down.weight')!.data,
    );
    expect(hf.get('transformer.ln_f.bias')!.data).toBe(ours.get('final_norm.bias')!.data);
  });

  it('imports its own export bit-exactly', () => {
    expectSameState(fromHfStateDict(GPT2, hf), ours);
  });

  it('imports an official-style file: no prefix, attn.bias buffers, a tied lm_head equal to wte', () => {
    const official = new Map<string, Tensor32>();
    for (const [name, t] of hf) official.set(name.replace(/^transformer\./, ''), t);
    for (let i = 0; i < GPT2.layers; i++) {
      official.set(`h.${i}.attn.bias`, { shape: [1, 1, 16, 16], data: new Float32Array(256) });
      official.set(`h.${i}.attn.masked_bias`, { shape: [], data: new Float32Array([-1e4]) });
    }
    official.set('lm_head.weight', official.get('wte.weight')!);
    expectSameState(fromHfStateDict(GPT2, official), ours);
  });

  it('exports and imports an untied lm_head as [V, d]', () => {
    const untied = { ...GPT2, tieEmbeddings: false };
    const state = seededState(untied);
    const out = toHfStateDict(untied, state);
    const head = out.get('lm_head.weight')!;
    expect(head.shape).toEqual([11, d]);
    expect(at(head, 3, 5)).toBe(at(state.get('lm_head.weight')!, 5, 3));
    expectSameState(fromHfStateDict(untied, out), state);
  });

  it('refuses a tied lm_head that differs from the embedding', () => {
    const bad = new Map(hf).set('lm_head.weight', {
      shape: [11, d],
      data: new Float32Array(11 * d),
    });
    const e = thrown(() => fromHfStateDict(GPT2, bad));
    expect(e.code).toBe('BAD_CHECKPOINT');
    expect(e.message).toContain("tensor 'lm_head.weight': differs from the embedding");
  });
});

describe('Llama and Qwen2 names', () => {
  it('transposes nn.Linear weights to [out, in], with GQA widths', () => {
    const ours = seededState(LLAMA);
    const hf = toHfStateDict(LLAMA, ours);
    const q = hf.get('model.layers.0.self_attn.q_proj.weight')!;
    expect(q.shape).toEqual([16, 16]);
    expect(hf.get('model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([8, 16]); // KV·hd = 2·4
    expect(hf.get('model.layers.1.mlp.gate_proj.weight')!.shape).toEqual([24, 16]);
    expect(hf.get('model.layers.1.mlp.down_proj.weight')!.shape).toEqual([16, 24]);
    expect(hf.get('lm_head.weight')!.shape).toEqual([13, 16]);
    const ourQ = ours.get('layers.0.attn.q.weight')!;
    for (let o = 0; o < 16; o++)
      for (let i = 0; i < 16; i++) expect(at(q, o, i)).toBe(at(ourQ, i, o));
    expect([...hf.keys()].some((n) => n.endsWith('.bias'))).toBe(false);
    expectSameState(fromHfStateDict(LLAMA, hf), ours);
  });

  it('Qwen2 carries q/k/v biases only and no lm_head when tied', () => {
    const ours = seededState(QWEN2);
    const hf = toHfStateDict(QWEN2, ours);
    expect([...hf.keys()].filter((n) => n.endsWith('.bias')).sort()).toEqual([
      'model.layers.0.self_attn.k_proj.bias',
      'model.layers.0.self_attn.q_proj.bias',
      'model.layers.0.self_attn.v_proj.bias',
    ]);
    expect(hf.has('lm_head.weight')).toBe(false);
    expectSameState(fromHfStateDict(QWEN2, hf), ours);
  });

  it('skips rotary inv_freq buffers and imports score / value_head heads from [1, d]', () => {
    const ours = seededState(LLAMA, ['score', 'value_head']);
    const hf = toHfStateDict(LLAMA, ours);
    expect(hf.get('score.weight')!.shape).toEqual([1, 16]);
    expect(hf.get('value_head.weight')!.shape).toEqual([1, 16]);
    hf.set('model.layers.0.self_attn.rotary_emb.inv_freq', {
      shape: [2],
      data: new Float32Array(2),
    });
    const back = fromHfStateDict(LLAMA, hf);
    expect(back.get('score.weight')!.shape).toEqual([16, 1]);
    expectSameState(back, ours);
  });
});

describe('name-mapping errors', () => {
  const hf = toHfStateDict(LLAMA, seededState(LLAMA));

  it('names a missing tensor by its HF name and ours', () => {
    const bad = new Map(hf);
    bad.delete('model.layers.1.self_attn.v_proj.weight');
    const e = thrown(() => fromHfStateDict(LLAMA, bad, { source: 'ckpt/' }));
    expect(e.code).toBe('BAD_CHECKPOINT');
    expect(e.message).toContain('ckpt/:');
    expect(e.message).toContain(
      'missing 1: model.layers.1.self_attn.v_proj.weight (→ layers.1.attn.v.weight)',
    );
  });

  it('names a misshaped tensor with expected and actual shapes', () => {
    const bad = new Map(hf).set('model.norm.weight', { shape: [15], data: new Float32Array(15) });
    const e = thrown(() => fromHfStateDict(LLAMA, bad));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toContain(
      "tensor 'model.norm.weight' (→ final_norm.weight) has shape [15], expected [16]",
    );
    expect(e.details).toMatchObject({ tensor: 'model.norm.weight', expected: [16], got: [15] });
  });

  it('lists unexpected tensors, at most 10', () => {
    const bad = new Map(hf);
    for (let i = 0; i < 12; i++) bad.set(`extra.${i}`, { shape: [1], data: new Float32Array(1) });
    const e = thrown(() => fromHfStateDict(LLAMA, bad));
    expect(e.message).toContain('unexpected 12: extra.0, extra.1');
    expect(e.message).toContain('extra.9 and 2 more');
    expect(e.message).not.toContain('extra.10');
  });

  it('refuses a Llama state dict given a GPT-2 config', () => {
    const e = thrown(() => fromHfStateDict(GPT2, hf));
    expect(e.message).toContain('do not match the gpt2 config');
    expect(e.message).toContain('transformer.wte.weight (→ embed.weight)');
  });

  it('checks our own state dict on export', () => {
    const ours = seededState(GPT2);
    ours.delete('layers.0.attn.k.bias');
    expect(() => toHfStateDict(GPT2, ours)).toThrow('missing 1: layers.0.attn.k.bias');
    const misshaped = seededState(GPT2).set('embed.weight', {
      shape: [8, 11],
      data: new Float32Array(88),
    });
    expect(() => toHfStateDict(GPT2, misshaped)).toThrow(
      "tensor 'embed.weight' has shape [8, 11], expected [11, 8]",
    );
  });
});
