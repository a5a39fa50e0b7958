import { importData } from '../checkpoint/hf-names.js';
import { openHfStream } from '../checkpoint/stream.js';
import type { Tensor32 } from '../checkpoint/tensor32.js';
import { CausalLM } from '../model/causal-lm.js';
import type { HeadName } from '../params.js';
import { attachQuantizedBase, QuantizedBase, quantizedPrefixes, transpose } from './base.js';
import { quantizeNF4 } from './nf4.js';

/**
 * A Hugging Face model directory loaded with its projections quantised to NF4 as they are read
 * (QLoRA's frozen base): one tensor at a time is read from the safetensors file(s) (checkpoint/stream.ts), decoded to
 * fp32 (F32, F16 or BF16 on disk), quantised and dropped, so the process never holds the model's
 * fp32 projections — only the embedding, the LM head, the norms and biases (kept fp32) and one
 * projection at a time. The quantised base is not saved: a QLoRA checkpoint holds the adapters
 * (PEFT) and names the base, which is quantised again at load (deterministic: the same codes).
 */
export interface QuantizedLoad {
  readonly model: CausalLM;
  readonly base: QuantizedBase;
}

/** Load `dir` with its projections as NF4 (see the interface); `heads` as in `loadHfModel`. */
export async function loadQuantizedModel(
  dir: string,
  opts: { heads?: readonly HeadName[] } = {},
): Promise<QuantizedLoad> {
  const stream = await openHfStream(dir, opts);
  const { config, heads } = stream;
  const quantized = new Set(quantizedPrefixes({ config }).map((p) => `${p}.weight`));
  const base = new QuantizedBase();
  const state = new Map<string, Tensor32>();
  for await (const { rule: r, t, ours } of stream.tensors()) {
    if (
      r.ours.every((n) => quantized.has(n)) &&
      (r.layout === 'transpose' || r.layout === 'stack')
    ) {
      // nn.Linear rows [out, in] (stacked for Phi-3's fused projections): already Q's layout
      const inDim = t.shape[1];
      let row = 0;
      for (const [k, n] of r.ours.entries()) {
        const outDim = ours[k][1];
        const rows = t.data.subarray(row * inDim, (row + outDim) * inDim);
        base.add(n.slice(0, -'.weight'.length), quantizeNF4(rows, [outDim, inDim]));
        row += outDim;
      }
      continue;
    }
    for (const [k, data] of importData(r, t, ours).entries()) {
      const n = r.ours[k];
      if (!quantized.has(n)) {
        state.set(n, { shape: [...ours[k]], data });
        continue;
      }
      const [inDim, outDim] = ours[k] as [number, number];
      base.add(
        n.slice(0, -'.weight'.length),
        quantizeNF4(transpose(data, inDim, outDim), [outDim, inDim]),
      );
    }
  }
  const model = CausalLM.fromState(config, state, heads, { absent: quantized });
  state.clear();
  return { model, base: attachQuantizedBase(model, base) };
}
