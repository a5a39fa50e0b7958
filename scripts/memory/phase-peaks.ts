/**
 * Where a training step's wasm heap goes, phase by phase, beside the predictor's terms
 * (developers run this; CI does not). A fresh model (no checkpoint read) from a Hugging Face
 * config.json's fields, on the wasm backend, one SFT step as the trainers take it (Trainable.step:
 * loss, backward, clip, AdamW), with every tensor buffer of the heap counted once:
 *
 *   npx tsx scripts/memory/phase-peaks.ts qwen3-0.6b lora 4 256 [--checkpoint] [--layers N]
 *   MODEL: qwen3-0.6b | qwen2.5-0.5b | llama-1.1b (configs.json, as make-models.py); METHOD: lora | full
 *
 * Prints, in MiB above the weights and optimizer state: the forward's peak, the backward's (with
 * the update), and at the backward's peak the live buffers by size and the stack that allocated
 * it, then predictMemory's terms for the same job.
 */

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRuntime } from '../../src/kernels/runtime.js';
import * as tf from '../../src/kernels/tf.js';
import { lmLoss } from '../../src/policy/index.js';
import { readModelConfig } from '../../src/policy/io.js';
import { type MemoryJob, predictMemory } from '../../src/policy/memory.js';
import { Trainable } from '../../src/policy/trainable.js';

/** make-models.py's configs (configs.json): each model's published config.json fields. */
const CONFIGS = JSON.parse(
  readFileSync(new URL('./configs.json', import.meta.url), 'utf8'),
) as Record<string, { class: string; config: Record<string, unknown> }>;
const TYPES: Record<string, [string, string]> = {
  Qwen2Config: ['qwen2', 'Qwen2ForCausalLM'],
  Qwen3Config: ['qwen3', 'Qwen3ForCausalLM'],
  LlamaConfig: ['llama', 'LlamaForCausalLM'],
};
const HF: Record<string, Record<string, unknown>> = Object.fromEntries(
  Object.entries(CONFIGS).map(([name, e]) => {
    const [modelType, arch] = TYPES[e.class];
    return [name, { model_type: modelType, architectures: [arch], ...e.config }];
  }),
);

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    checkpoint: { type: 'boolean', default: false },
    layers: { type: 'string' },
  },
});
const [name, methodArg, batchArg, seqArg] = positionals;
const method = methodArg as 'lora' | 'full';
if (!HF[name] || (method !== 'lora' && method !== 'full')) {
  throw new Error(`usage: phase-peaks.ts ${Object.keys(HF).join('|')} lora|full BATCH SEQ`);
}
const B = Number(batchArg);
const T = Number(seqArg);
const say = (line: string) => process.stdout.write(`${line}\n`);
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

interface Heap {
  _malloc(n: number): number;
  _free(p: number): void;
}

/** Live buffers by address over the guard's malloc, the peak, and what was live at the peak. */
function trackHeap(wasm: Heap) {
  const live = new Map<number, number>();
  const s = { live: 0, peak: 0, atPeak: new Map<number, number>(), stack: '' };
  const malloc = wasm._malloc;
  const free = wasm._free;
  wasm._malloc = (n: number) => {
    const p = malloc(n);
    live.set(p >>> 0, n);
    s.live += n;
    if (s.live > s.peak) {
      // snapshot only when the peak grows by a MiB or more: a few hundred copies at most
      if (s.live > s.peak + 2 ** 20 || s.stack === '') {
        s.atPeak = new Map();
        for (const b of live.values()) s.atPeak.set(b, (s.atPeak.get(b) ?? 0) + 1);
        s.stack = new Error().stack ?? '';
      }
      s.peak = s.live;
    }
    return p;
  };
  wasm._free = (p: number) => {
    const n = live.get(p >>> 0);
    if (n !== undefined) {
      live.delete(p >>> 0);
      s.live -= n;
    }
    free(p);
  };
  return {
    reset() {
      s.peak = s.live;
      s.stack = '';
      s.atPeak = new Map();
    },
    state: s,
  };
}

async function main() {
  Error.stackTraceLimit = 60;
  await startRuntime({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'troupe-phase-'));
  const hf = { ...HF[name], ...(o.layers ? { num_hidden_layers: Number(o.layers) } : {}) };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hf));
  const config = await readModelConfig(dir);
  const lora = { rank: 8, alpha: 16, dropout: 0, targetModules: ['q', 'v'] };
  const heap = trackHeap((tf.findBackend('wasm') as unknown as { wasm: Heap }).wasm);
  const t = await Trainable.create(
    {
      model: { config, seed: 1 },
      optimizer: { lr: 1e-5 },
      gradientCheckpointing: o.checkpoint,
      ...(method === 'lora' ? { lora: { ...lora, seed: 1 } } : {}),
    },
    'phase-peaks',
  );
  const V = config.vocabSize;
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % V);
  const batch = { ids, mask: new Uint8Array(B * T).fill(1), batch: B, length: T };
  let forward = 0;
  let base = 0;
  const lossFn = () => {
    const loss = lmLoss(t.model, batch as never, { checkpoint: o.checkpoint }).loss;
    forward = heap.state.peak - base;
    heap.reset();
    return { loss, weight: 1 };
  };
  // one warm-up step creates AdamW's moments; the measured one starts from the steady state
  await t.step([lossFn], 1e-5, 1);
  base = heap.state.live;
  heap.reset();
  await t.step([lossFn], 1e-5, 2);
  const backward = heap.state.peak - base;
  const job: MemoryJob = {
    config,
    method,
    ...(method === 'lora' ? { lora } : {}),
    batch: B,
    seq: T,
    checkpoint: o.checkpoint,
  };
  const p = predictMemory(job);
  const sizes = [...heap.state.atPeak].sort((a, b) => b[0] * b[1] - a[0] * a[1]).slice(0, 16);
  say(`${name} ${method}${o.checkpoint ? ' checkpointed' : ''} ${B}x${T} layers ${config.layers}`);
  say(`  resident (weights, adapters, moments): ${MiB(base)} MiB`);
  say(`  forward peak above it: ${MiB(forward)} MiB`);
  say(`  backward + update peak above it: ${MiB(backward)} MiB`);
  say(`  live buffers at the backward's peak (MiB each × count):`);
  for (const [b, n] of sizes) say(`    ${MiB(b)} × ${n}`);
  const frames = heap.state.stack
    .split('\n')
    .filter((l) => /\/src\//.test(l) && !/kernels\/tf|engine/.test(l));
  say(`  allocating at the peak (Troupe's frames):\n${frames.slice(0, 12).join('\n')}`);
  say(
    `  predicted: peak above resident ${MiB(p.peak - p.weights - p.optimizer)} MiB, ` +
      `activations ${MiB(p.activations)}, weights ${MiB(p.weights)}, optimizer ${MiB(p.optimizer)}`,
  );
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
