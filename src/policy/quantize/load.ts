import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TroupeError } from '../../errors.js';
import { INDEX_FILE, readCheckpointJson, readIndex, SINGLE_FILE } from '../checkpoint/directory.js';
import { fromHfConfig } from '../checkpoint/hf-config.js';
import { importData } from '../checkpoint/hf-names.js';
import { FAMILIES, HEADS, hfShape, plan } from '../checkpoint/hf-rules.js';
import { readSafetensors, readSafetensorsHeader } from '../checkpoint/safetensors.js';
import { badCheckpoint, fmtShape, type Tensor32 } from '../checkpoint/tensor32.js';
import { CausalLM } from '../model/causal-lm.js';
import type { HeadName } from '../params.js';
import { attachQuantizedBase, QuantizedBase, quantizedPrefixes, transpose } from './base.js';
import { quantizeNF4 } from './nf4.js';

/**
 * A Hugging Face model directory loaded with its projections quantised to NF4 as they are read
 * (QLoRA's frozen base): one tensor at a time is read from the safetensors file(s), decoded to
 * fp32 (F32, F16 or BF16 on disk), quantised and dropped, so the process never holds the model's
 * fp32 projections — only the embedding, the LM head, the norms and biases (kept fp32) and one
 * projection at a time. The quantised base is not saved: a QLoRA checkpoint holds the adapters
 * (PEFT) and names the base, which is quantised again at load (deterministic: the same codes).
 */
export interface QuantizedLoad {
  readonly model: CausalLM;
  readonly base: QuantizedBase;
}

/** HF tensor name → the safetensors file holding it (the index when there is one). */
async function tensorFiles(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (existsSync(join(dir, INDEX_FILE))) {
    for (const [file, names] of await readIndex(join(dir, INDEX_FILE)))
      for (const name of names) out.set(name, join(dir, file));
  } else if (existsSync(join(dir, SINGLE_FILE))) {
    const path = join(dir, SINGLE_FILE);
    for (const name of (await readSafetensorsHeader(path)).tensors.keys()) out.set(name, path);
  } else {
    throw badCheckpoint(dir, `has neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
  }
  return out;
}

/** Load `dir` with its projections as NF4 (see the interface); `heads` as in `loadHfModel`. */
export async function loadQuantizedModel(
  dir: string,
  opts: { heads?: readonly HeadName[] } = {},
): Promise<QuantizedLoad> {
  const configPath = join(dir, 'config.json');
  const config = fromHfConfig(await readCheckpointJson(configPath), configPath);
  const fam = FAMILIES[config.family];
  const files = new Map<string, string>(); // canonical name → file
  const hfName = new Map<string, string>(); // canonical name → name in the file
  for (const [name, file] of await tensorFiles(dir)) {
    const canon = fam.canonical(name);
    if (fam.isBuffer(canon)) continue;
    files.set(canon, file);
    hfName.set(canon, name);
  }
  const heads = HEADS.filter((h) => files.has(`${h}.weight`) || opts.heads?.includes(h));
  const lmHead = config.tieEmbeddings || files.has('lm_head.weight') || !heads.includes('score');
  const { rules, shapes } = plan(config, heads, { lmHead });
  const missing = rules.filter((r) => !files.has(r.hf)).map((r) => r.hf);
  const used = new Set(rules.map((r) => r.hf));
  if (config.tieEmbeddings) used.add('lm_head.weight'); // a redundant copy: the embedding is read
  const unexpected = [...files.keys()].filter((n) => !used.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    throw badCheckpoint(
      dir,
      `tensors do not match the ${config.family} config (missing: ${missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${unexpected.slice(0, 5).join(', ') || 'none'})`,
      { missing: missing.slice(0, 10), unexpected: unexpected.slice(0, 10) },
    );
  }
  const quantized = new Set(quantizedPrefixes({ config }).map((p) => `${p}.weight`));
  const base = new QuantizedBase();
  const state = new Map<string, Tensor32>();
  for (const r of rules) {
    const name = hfName.get(r.hf)!;
    const file = files.get(r.hf)!;
    const read = await readSafetensors(file, { only: (n) => n === name, weights: true });
    const t = read.tensors.get(name);
    if (!t) throw badCheckpoint(file, `is missing tensor '${name}'`, { tensor: name });
    const want = hfShape(r, shapes);
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new TroupeError(
        'SHAPE_MISMATCH',
        `${file}: tensor '${name}' has shape ${fmtShape(t.shape)}, expected ${fmtShape(want)}`,
        { details: { file, tensor: name, expected: want, got: [...t.shape] } },
      );
    }
    const ours = r.ours.map((n) => shapes.get(n)!);
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
