import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadHfDirectory,
  readSafetensorsHeader,
  saveHfDirectory,
  toHfStateDict,
} from '../../../src/policy/checkpoint/index.js';
import { readSafetensors } from '../../../src/policy/checkpoint/safetensors.js';
import { expectSameState, GPT2, LLAMA, QWEN2, seededState, tmpDir } from './fixtures.js';

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('Hugging Face directories', () => {
  it.each([
    ['gpt2', GPT2],
    ['llama', LLAMA],
    ['qwen2', QWEN2],
  ] as const)('%s: one model.safetensors, loaded back bit-exactly', async (_, config) => {
    const dir = tmpDir();
    const state = seededState(config);
    await saveHfDirectory(dir, config, state, { extraFiles: { 'generation_config.json': '{}\n' } });
    expect(readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
    expect(readJson(join(dir, 'config.json')).torch_dtype).toBe('float32');
    const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
    expect(header.metadata.format).toBe('pt');
    const loaded = await loadHfDirectory(dir);
    expect(loaded.config).toEqual(config);
    expect(loaded.dtype).toBe('F32');
    expectSameState(loaded.state, state);
  });

  it('shards past maxShardBytes, with an index transformers reads', async () => {
    const dir = tmpDir();
    const state = seededState(LLAMA, ['value_head']);
    await saveHfDirectory(dir, LLAMA, state, { maxShardBytes: 3000 });
    const files = readdirSync(dir).sort();
    const shards = files.filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(1);
    shards.forEach((f, i) => {
      expect(f).toBe(`model-0000${i + 1}-of-0000${shards.length}.safetensors`);
    });
    expect(files).toEqual([
      'config.json',
      'generation_config.json',
      ...shards,
      'model.safetensors.index.json',
    ]);

    const index = readJson(join(dir, 'model.safetensors.index.json'));
    const hf = toHfStateDict(LLAMA, state);
    let total = 0;
    for (const t of hf.values()) total += t.data.length * 4;
    expect(index.metadata).toEqual({ total_size: total });
    expect(Object.keys(index.weight_map)).toEqual([...hf.keys()].sort());
    for (const shard of shards) {
      const header = await readSafetensorsHeader(join(dir, shard));
      const mapped = Object.keys(index.weight_map).filter((n) => index.weight_map[n] === shard);
      expect([...header.tensors.keys()].sort()).toEqual(mapped.sort());
    }

    const loaded = await loadHfDirectory(dir);
    expect(loaded.config).toEqual(LLAMA);
    expectSameState(loaded.state, state);
  });

  it('a later single-file save removes stale shards and index', async () => {
    const dir = tmpDir();
    await saveHfDirectory(dir, GPT2, seededState(GPT2, [], 1), { maxShardBytes: 1000 });
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
    const state = seededState(GPT2, [], 2);
    await saveHfDirectory(dir, GPT2, state);
    expect(readdirSync(dir).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
    ]);
    expectSameState((await loadHfDirectory(dir)).state, state);
  });

  it('a reward model (score head) is a sequence classifier: no LM head, one label, no generation config', async () => {
    const dir = tmpDir();
    const state = seededState(LLAMA, ['score']);
    await saveHfDirectory(dir, LLAMA, state);
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(readJson(join(dir, 'config.json'))).toMatchObject({
      architectures: ['LlamaForSequenceClassification'],
      num_labels: 1,
    });
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    expect(tensors.has('lm_head.weight')).toBe(false);
    expect(tensors.get('score.weight')!.shape).toEqual([1, LLAMA.hidden]);
    const loaded = await loadHfDirectory(dir);
    const want = new Map([...state].filter(([n]) => n !== 'lm_head.weight'));
    expectSameState(loaded.state, want);
    // without a score head, a missing LM head is still an error
    const noHead = new Map([...want].filter(([n]) => n !== 'score.weight'));
    await expect(saveHfDirectory(tmpDir(), LLAMA, noHead)).rejects.toThrow(
      /missing 1: lm_head\.weight/,
    );
  });

  it('BF16 loads back within bfloat16 precision', async () => {
    const dir = tmpDir();
    const state = seededState(GPT2);
    await saveHfDirectory(dir, GPT2, state, { dtype: 'BF16' });
    expect(readJson(join(dir, 'config.json')).torch_dtype).toBe('bfloat16');
    const loaded = await loadHfDirectory(dir);
    expect(loaded.dtype).toBe('BF16');
    for (const [name, t] of state) {
      const got = loaded.state.get(name)!.data;
      t.data.forEach((x, i) => {
        expect(Math.abs(got[i] - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8); // half a bf16 ulp: 8 significant bits
      });
    }
  });

  it('names the file when a shard is missing or disagrees with the index', async () => {
    const dir = tmpDir();
    await saveHfDirectory(dir, LLAMA, seededState(LLAMA), { maxShardBytes: 3000 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = readJson(indexPath);
    const [name, file] = Object.entries(index.weight_map)[0] as [string, string];
    const other = Object.values(index.weight_map).find((f) => f !== file) as string;

    index.weight_map[name] = 'model-00099-of-00099.safetensors';
    writeFileSync(indexPath, JSON.stringify(index));
    await expect(loadHfDirectory(dir)).rejects.toThrow(
      `${join(dir, 'model-00099-of-00099.safetensors')}: is missing (named by model.safetensors.index.json`,
    );

    index.weight_map[name] = other;
    writeFileSync(indexPath, JSON.stringify(index));
    await expect(loadHfDirectory(dir)).rejects.toThrow(
      `${join(dir, other)}: tensor '${name}': is missing, though model.safetensors.index.json maps it to this file`,
    );
  });

  it('refuses a directory without weights or config, and bad options', async () => {
    const dir = tmpDir();
    await expect(loadHfDirectory(dir)).rejects.toThrow(
      `${join(dir, 'config.json')}: cannot read (ENOENT)`,
    );
    await saveHfDirectory(dir, GPT2, seededState(GPT2));
    rmSync(join(dir, 'model.safetensors'));
    await expect(loadHfDirectory(dir)).rejects.toThrow(
      `${dir}: has neither model.safetensors nor model.safetensors.index.json`,
    );
    await expect(
      saveHfDirectory(dir, GPT2, seededState(GPT2), { maxShardBytes: 0 }),
    ).rejects.toThrow('maxShardBytes must be a positive integer');
    await expect(
      saveHfDirectory(dir, GPT2, seededState(GPT2), { extraFiles: { '../x.json': '' } }),
    ).rejects.toThrow("extraFiles name '../x.json'");
  });
});
