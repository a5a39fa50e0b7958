import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RandomStream } from '../../src/kernels/random.js';
import * as tf from '../../src/kernels/tf.js';
import { loadHfDirectory } from '../../src/policy/checkpoint/directory.js';
import { loadHfModel, loadModel, readModelConfig, saveModel } from '../../src/policy/io.js';
import { Lora } from '../../src/policy/lora.js';
import { mergeToDirectory } from '../../src/policy/merge.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { saveLoraAdapter } from '../../src/policy/peft.js';
import { tokenLogprobs } from '../../src/policy/score.js';
import { describeModelSource, resolveModelSource } from '../../src/policy/source.js';
import { RunDir } from '../../src/train/run-dir.js';
import { expectNoLeak, useBackend } from '../helpers/backends.js';
import { randomState, TINY } from './fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-source-'));
const ROWS = [
  [1, 5, 9, 2, 7, 3],
  [4, 4, 11, 0, 8],
];

/** Give B random values (it starts at zero) so the adapter changes the model. */
function randomizeB(model: CausalLM, lora: Lora, seed: number): void {
  for (const s of lora.sites) {
    const v = model.params.get(`${s.prefix}.lora_B.weight`)!;
    const t = tf.tensor(
      RandomStream.of({ seed, step: 0, actor: 'b', purpose: s.prefix }).normal(v.size, 0, 0.4),
      v.shape,
    );
    v.assign(t);
    t.dispose();
  }
}

/**
 * A LoRA checkpoint as Troupe's trainers write it (`Trainable.saveCheckpoint`): the base model
 * and the PEFT adapter in one directory. Returns the in-memory model with its adapter attached.
 */
async function loraCheckpoint(dir: string, family: 'llama' | 'gpt2' = 'llama') {
  const model = CausalLM.fromState(TINY[family], randomState(TINY[family], 7));
  const lora = new Lora(
    model,
    {
      rank: 2,
      alpha: 4,
      dropout: 0,
      targetModules: family === 'gpt2' ? ['c_attn', 'c_proj'] : ['q', 'v', 'down'],
    },
    { seed: 1 },
  );
  randomizeB(model, lora, 3);
  await saveLoraAdapter(dir, lora, { baseModel: '/nowhere/the-start-model' });
  await saveModel(dir, model);
  return { model, lora };
}

const flat = (x: number[][]) => x.flat();
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

describe('model sources: LoRA checkpoints, adapter-only directories, run directories', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('a LoRA checkpoint loads with its adapter merged: ≠ the base, = the adapted model', async () => {
    for (const family of ['llama', 'gpt2'] as const) {
      const dir = tmp();
      const { model, lora } = await loraCheckpoint(dir, family);
      const source = await resolveModelSource(dir);
      expect(source).toMatchObject({ dir, base: dir, adapters: [dir] });
      expect(describeModelSource(source)).toMatch(
        /LoRA checkpoint .*base \(in the same directory\) with its adapter merged/,
      );

      const adapted = flat(await tokenLogprobs(model, ROWS)); // unmerged: x·W + (α/r)·x·A·B
      lora.merge();
      const merged = flat(await tokenLogprobs(model, ROWS));
      const base = await loadHfModel(dir);
      const loaded = await loadModel(dir);
      const baseLp = flat(await tokenLogprobs(base, ROWS));
      const loadedLp = flat(await tokenLogprobs(loaded, ROWS));
      // The adapter matters (what was silently dropped before) …
      expect(maxDiff(loadedLp, baseLp)).toBeGreaterThan(0.05);
      // … the loaded model is the merged one, bit for bit, and the adapted one within rounding.
      expect(loadedLp).toEqual(merged);
      expect(maxDiff(loadedLp, adapted)).toBeLessThan(1e-5);
      // A plain model again: no adapter parameters left, the same parameter names as the base.
      expect([...loaded.params.keys()].sort()).toEqual([...base.params.keys()].sort());
      tf.dispose([model, base, loaded].flatMap((m) => [...m.params.values()]));
    }
  });

  it('loading and merging leaves no tensor behind', async () => {
    const dir = tmp();
    const { model } = await loraCheckpoint(dir);
    model.dispose();
    await expectNoLeak(async () => {
      (await loadModel(dir)).dispose();
    });
  });

  it('an adapter-only directory finds its base through base_model_name_or_path', async () => {
    const root = tmp();
    const ckpt = join(root, 'ckpt');
    const { model, lora } = await loraCheckpoint(ckpt);
    lora.merge();
    const want = flat(await tokenLogprobs(model, ROWS));
    model.dispose();
    // The base in its own directory, the adapter alone beside it, as PEFT's save_pretrained does.
    const base = join(root, 'base');
    mkdirSync(base);
    for (const f of ['config.json', 'model.safetensors'])
      copyFileSync(join(ckpt, f), join(base, f));
    const adapter = join(root, 'adapters', 'a1');
    mkdirSync(adapter, { recursive: true });
    for (const f of ['adapter_model.safetensors', 'adapter_config.json'])
      copyFileSync(join(ckpt, f), join(adapter, f));
    const setBase = (v: unknown) => {
      const file = join(adapter, 'adapter_config.json');
      const cfg = JSON.parse(readFileSync(file, 'utf8'));
      writeFileSync(file, JSON.stringify({ ...cfg, base_model_name_or_path: v }));
    };

    setBase('../../base'); // relative to the adapter directory
    const s = await resolveModelSource(adapter);
    expect(s).toMatchObject({ dir: adapter, base, adapters: [adapter] });
    const m = await loadModel(s);
    expect(flat(await tokenLogprobs(m, ROWS))).toEqual(want);
    m.dispose();
    setBase(base); // absolute
    expect((await resolveModelSource(adapter)).base).toBe(base);
    setBase(relative(process.cwd(), base)); // relative to the working directory
    expect((await resolveModelSource(adapter)).base).toBe(base);

    setBase(null);
    await expect(resolveModelSource(adapter, { field: 'model.path' })).rejects.toThrow(
      /model\.path: .*adapter_config\.json: the adapter's base model is unknown: .* holds no base model .*'base_model_name_or_path' is null/,
    );
    setBase('../missing');
    await expect(resolveModelSource(adapter)).rejects.toThrow(
      /adapter_config\.json: base model '\.\.\/missing' not found \(looked in .*adapters\/missing, /,
    );
    setBase('Qwen/Qwen3-0.6B');
    await expect(resolveModelSource(adapter)).rejects.toThrow(
      /Hugging Face Hub id: Troupe reads local directories only/,
    );
  });

  it('an adapter on an adapter: both merged, in order', async () => {
    const root = tmp();
    const first = join(root, 'first');
    const { model, lora } = await loraCheckpoint(first);
    lora.mergeAndUnload();
    const second = new Lora(
      model,
      { rank: 3, alpha: 3, dropout: 0, targetModules: ['k', 'o'] },
      { seed: 5 },
    );
    randomizeB(model, second, 9);
    const top = join(root, 'second');
    await saveLoraAdapter(top, second, { baseModel: '../first' });
    second.merge();
    const want = flat(await tokenLogprobs(model, ROWS));
    model.dispose();
    const s = await resolveModelSource(top);
    expect(s.adapters).toEqual([first, top]);
    expect(s.base).toBe(first);
    const m = await loadModel(s);
    expect(maxDiff(flat(await tokenLogprobs(m, ROWS)), want)).toBeLessThan(1e-6);
    m.dispose();
  });

  it('refuses half an adapter, and PEFT options it would otherwise ignore', async () => {
    const dir = tmp();
    (await loraCheckpoint(dir)).model.dispose();
    const cfgFile = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, use_dora: true }));
    await expect(loadModel(dir)).rejects.toThrow(
      /adapter_config\.json: 'use_dora' must be false \(DoRA is not supported\)/,
    );
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, layers_to_transform: [0] }));
    await expect(loadModel(dir)).rejects.toThrow(/'layers_to_transform' must be null/);
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, rank_pattern: { q_proj: 4 } }));
    await expect(loadModel(dir)).rejects.toThrow(/'rank_pattern' must be \{\}/);
    const lone = tmp();
    copyFileSync(cfgFile, join(lone, 'adapter_config.json'));
    await expect(resolveModelSource(lone, { field: '--model' })).rejects.toThrow(
      /--model: .* has adapter_config\.json but no adapter_model\.safetensors/,
    );
  });

  it('a run directory leads to its best checkpoint, else its latest, and says which', async () => {
    const out = join(tmp(), 'run');
    const run = await RunDir.create(out, { config: { algorithm: 'sft' } });
    await expect(resolveModelSource(out, { field: 'model.path' })).rejects.toThrow(
      /model\.path: .*run is a run directory with no committed checkpoint yet/,
    );
    const models = [11, 12, 13].map((seed) => randomState(TINY.llama, seed));
    for (const [i, loss] of [2.5, 1.5, 1.9].entries()) {
      const step = (i + 1) * 10;
      const m = CausalLM.fromState(TINY.llama, models[i]);
      await saveModel(run.checkpointDir(step), m);
      m.dispose();
      await run.commitCheckpoint(step, { metric: { name: 'eval/loss', value: loss, mode: 'min' } });
    }
    const best = await resolveModelSource(out);
    expect(best.dir).toBe(run.checkpointDir(20));
    expect(best.checkpoint).toMatchObject({ run: out, step: 20, pick: 'best' });
    expect(describeModelSource(best)).toMatch(
      /run directory .*: its best checkpoint, step-000020 \(eval\/loss 1\.5, lowest\); model /,
    );
    // Its checkpoints/ folder is taken the same way.
    expect((await resolveModelSource(join(out, 'checkpoints'))).dir).toBe(run.checkpointDir(20));
    const loaded = await loadModel(out);
    expect((await loaded.stateDict()).get('embed.weight')!.data).toEqual(
      models[1].get('embed.weight')!.data,
    );
    loaded.dispose();

    const plain = join(tmp(), 'run');
    const r2 = await RunDir.create(plain, { config: { algorithm: 'pretrain' } });
    for (const step of [5, 6]) {
      const m = CausalLM.fromState(TINY.llama, models[0]);
      await saveModel(r2.checkpointDir(step), m);
      m.dispose();
      await r2.commitCheckpoint(step);
    }
    const latest = await resolveModelSource(plain);
    expect(latest.checkpoint).toMatchObject({ step: 6, pick: 'latest' });
    expect(describeModelSource(latest)).toMatch(
      /its latest checkpoint, step-000006 \(the run has no best\.json/,
    );
    // critic.path: a PPO checkpoint's critic/ when asked for and present.
    const critic = join(r2.checkpointDir(6), 'critic');
    const c = CausalLM.fromState(TINY.gpt2, randomState(TINY.gpt2, 2));
    await saveModel(critic, c);
    c.dispose();
    expect((await resolveModelSource(plain, { runSubdir: 'critic' })).dir).toBe(critic);
    expect((await readModelConfig(plain)).family).toBe('llama');
  });

  it('refuses a path that is not there, or a file', async () => {
    await expect(resolveModelSource('/no/such/model', { field: 'critic.path' })).rejects.toThrow(
      /critic\.path: \/no\/such\/model does not exist/,
    );
    const f = join(tmp(), 'x.json');
    writeFileSync(f, '{}');
    await expect(resolveModelSource(f)).rejects.toThrow(/is a file; give the model's directory/);
  });

  it('merge writes a plain HF directory that loads back bit-exactly, tokenizer files beside it', async () => {
    const dir = tmp();
    (await loraCheckpoint(dir)).model.dispose();
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {}}');
    writeFileSync(join(dir, 'chat_template.jinja'), '{{ messages }}');
    const out = join(tmp(), 'merged');
    const r = await mergeToDirectory(dir, out);
    expect(r.copied.map((c) => c.file)).toEqual([
      'tokenizer.json',
      'chat_template.jinja',
      'generation_config.json',
    ]);
    expect(existsSync(join(out, 'adapter_config.json'))).toBe(false);
    expect(readFileSync(join(out, 'chat_template.jinja'), 'utf8')).toBe('{{ messages }}');
    const viaAdapter = await (await loadModel(dir)).stateDict();
    const { state } = await loadHfDirectory(out);
    expect([...state.keys()].sort()).toEqual([...viaAdapter.keys()].sort());
    for (const [n, t] of viaAdapter) expect(state.get(n)!.data).toEqual(t.data);
    expect((await resolveModelSource(out)).adapters).toEqual([]);
    await expect(mergeToDirectory(dir, out)).rejects.toThrow(/is not empty/);
    await expect(mergeToDirectory(dir, dir)).rejects.toThrow(/is the model being merged/);
  });
});
