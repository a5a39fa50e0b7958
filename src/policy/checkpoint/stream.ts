import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TroupeError } from '../../errors.js';
import type { ModelConfig } from '../config.js';
import type { HeadName } from '../params.js';
import {
  checkFormat,
  INDEX_FILE,
  readCheckpointJson,
  readIndex,
  SINGLE_FILE,
} from './directory.js';
import { fromHfConfig } from './hf-config.js';
import { FAMILIES, HEADS, hfShape, plan, type Rule } from './hf-rules.js';
import { sameBits } from './layout.js';
import { readSafetensors, readSafetensorsHeader } from './safetensors.js';
import { badCheckpoint, fmtShape, sameShape, type Tensor32 } from './tensor32.js';

/*
 * A Hugging Face model directory read one tensor at a time (what loaders that convert as they go
 * read: the NF4 base of QLoRA, quantize/load.ts; a frozen model's bf16 matrices, policy/bf16.ts):
 * its config and tensor names first, checked against the config's rules, then each rule's tensor
 * read alone from its safetensors file, decoded to fp32 and shape-checked, so that the caller can
 * drop it before the next is read. `loadHfDirectory` reads every tensor at once instead.
 */

/** One HF tensor of the directory as a rule of hf-rules.ts reads it. */
export interface StreamedTensor {
  readonly rule: Rule;
  /** The tensor as stored (HF layout), decoded to fp32. */
  readonly t: Tensor32;
  /** Our shapes of `rule.ours`, in order. */
  readonly ours: readonly (readonly number[])[];
}

export interface HfTensorStream {
  readonly config: ModelConfig;
  /** Heads the directory has, or the caller asked for. */
  readonly heads: readonly HeadName[];
  /** Our name → shape of every parameter the rules cover. */
  readonly shapes: ReadonlyMap<string, readonly number[]>;
  /** The rules, in the order `tensors` reads them (hf-rules.ts `plan`). */
  readonly rules: readonly Rule[];
  /** Each rule's tensor in turn (read when asked for). */
  tensors(): AsyncGenerator<StreamedTensor>;
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
    const hint = existsSync(join(dir, 'pytorch_model.bin'))
      ? ' (pytorch_model.bin is not supported: convert it to safetensors)'
      : '';
    throw badCheckpoint(dir, `has neither ${SINGLE_FILE} nor ${INDEX_FILE}${hint}`);
  }
  return out;
}

/** One tensor alone from its file, checked against the shape the rules expect. */
async function readOne(file: string, name: string, want: readonly number[]): Promise<Tensor32> {
  const read = await readSafetensors(file, { only: (n) => n === name, weights: true });
  checkFormat(file, read.metadata.format);
  const t = read.tensors.get(name);
  if (!t) throw badCheckpoint(file, `is missing tensor '${name}'`, { tensor: name });
  if (!sameShape(t.shape, want)) {
    throw new TroupeError(
      'SHAPE_MISMATCH',
      `${file}: tensor '${name}' has shape ${fmtShape(t.shape)}, expected ${fmtShape(want)}`,
      { details: { file, tensor: name, expected: [...want], got: [...t.shape] } },
    );
  }
  return t;
}

/**
 * Open `dir` for reading one tensor at a time (see above). The names are checked now: a missing
 * or unexpected tensor is BAD_CHECKPOINT before any data is read. A tied model's redundant
 * `lm_head.weight`, when the file has one, is read beside the embedding and must equal it.
 * `heads`: heads to add beside those the checkpoint has (as `loadHfModel`).
 */
export async function openHfStream(
  dir: string,
  opts: { readonly heads?: readonly HeadName[] } = {},
): Promise<HfTensorStream> {
  const configPath = join(dir, 'config.json');
  const config = fromHfConfig(await readCheckpointJson(configPath), configPath);
  const fam = FAMILIES[config.family];
  const files = new Map<string, string>(); // canonical name → file
  const hfName = new Map<string, string>(); // canonical name → name in the file
  for (const [name, file] of await tensorFiles(dir)) {
    const canon = fam.canonical(name);
    if (fam.isBuffer(canon)) continue;
    const dup = hfName.get(canon);
    if (dup !== undefined)
      throw badCheckpoint(dir, `appears twice (as '${dup}' and '${name}')`, { tensor: canon });
    files.set(canon, file);
    hfName.set(canon, name);
  }
  const heads = HEADS.filter((h) => files.has(`${h}.weight`) || opts.heads?.includes(h));
  // a reward model saved as …ForSequenceClassification has a score head and no LM head
  const lmHead = config.tieEmbeddings || files.has('lm_head.weight') || !heads.includes('score');
  const { rules, shapes } = plan(config, heads, { lmHead });
  const missing = rules.filter((r) => !files.has(r.hf)).map((r) => r.hf);
  const used = new Set(rules.map((r) => r.hf));
  const tiedCopy = config.tieEmbeddings && files.has('lm_head.weight');
  if (tiedCopy) used.add('lm_head.weight'); // checked against the embedding when it is read
  const unexpected = [...files.keys()].filter((n) => !used.has(n));
  if (missing.length > 0 || unexpected.length > 0) {
    throw badCheckpoint(
      dir,
      `tensors do not match the ${config.family} config (missing: ${missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${unexpected.slice(0, 5).join(', ') || 'none'})`,
      { missing: missing.slice(0, 10), unexpected: unexpected.slice(0, 10) },
    );
  }
  async function* tensors(): AsyncGenerator<StreamedTensor> {
    for (const rule of rules) {
      const want = hfShape(rule, shapes);
      const t = await readOne(files.get(rule.hf)!, hfName.get(rule.hf)!, want);
      if (tiedCopy && rule.hf === fam.embedding) {
        const file = files.get('lm_head.weight')!;
        const name = hfName.get('lm_head.weight')!;
        const head = await readSafetensors(file, { only: (n) => n === name, weights: true });
        const h = head.tensors.get(name)!;
        if (!sameShape(h.shape, t.shape) || !sameBits(h.data, t.data)) {
          throw badCheckpoint(
            file,
            `differs from the embedding '${hfName.get(rule.hf)}', but the config ties them (set tie_word_embeddings: false to keep a separate head)`,
            { tensor: name },
          );
        }
      }
      yield { rule, t, ours: rule.ours.map((n) => shapes.get(n)!) };
    }
  }
  return { config, heads, shapes, rules, tensors };
}
