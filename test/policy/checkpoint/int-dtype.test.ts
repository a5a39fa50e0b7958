import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadHfDirectory } from '../../../src/policy/checkpoint/directory.js';
import { readSafetensors } from '../../../src/policy/checkpoint/safetensors.js';
import { loadModel, saveModel } from '../../../src/policy/io.js';
import { Lora } from '../../../src/policy/lora.js';
import { CausalLM } from '../../../src/policy/model/causal-lm.js';
import { saveLoraAdapter } from '../../../src/policy/peft.js';
import { useBackend } from '../../helpers/backends.js';
import { randomState, TINY } from '../fixtures.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'troupe-intdtype-'));

/**
 * Re-label one tensor's dtype in a safetensors header, keeping every byte offset: `from` and
 * `to` have the same element size, and the header keeps its length (padded with a space).
 */
function relabel(file: string, tensor: string, from: string, to: string): void {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = bytes.subarray(8, 8 + n).toString('utf8');
  const at = header.indexOf(`"${tensor}"`);
  const key = `"dtype":"${from}"`;
  const k = header.indexOf(key, at);
  expect(at >= 0 && k >= 0).toBe(true);
  const swapped = `"dtype":"${to}"`.padEnd(key.length, ' ');
  const out = Buffer.from(bytes);
  out.write(header.slice(0, k) + swapped + header.slice(k + key.length), 8, 'utf8');
  writeFileSync(file, out);
}

describe('integer weights are refused', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it.each([
    ['F32', 'I32'],
    ['F32', 'U32'],
    ['BF16', 'I16'],
    ['BF16', 'U16'],
  ] as const)(
    'a %s weight re-stored as %s is refused, naming the tensor and the file',
    async (from, to) => {
      const dir = tmp();
      const m = CausalLM.fromState(TINY.llama, randomState(TINY.llama, 1));
      await saveModel(dir, m, { dtype: from });
      m.dispose();
      const file = join(dir, 'model.safetensors');
      const name = 'model.layers.1.self_attn.k_proj.weight';
      // Before: it loads. After: the same bytes read as integers would be garbage; refused.
      await expect(loadHfDirectory(dir)).resolves.toBeDefined();
      relabel(file, name, from, to);
      const err = await loadHfDirectory(dir).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'BAD_CHECKPOINT',
        details: { file, tensor: name, dtype: to },
      });
      expect((err as Error).message).toContain(
        `${file}: tensor '${name}' is stored as ${to}, an integer dtype`,
      );
      // The same file read as data (not as weights) still decodes: the refusal is the loader's.
      expect((await readSafetensors(file)).dtypes.get(name)).toBe(to);
    },
  );

  it('an adapter tensor stored as an integer is refused too', async () => {
    const dir = tmp();
    const m = CausalLM.fromState(TINY.llama, randomState(TINY.llama, 2));
    const lora = new Lora(m, { rank: 2, alpha: 2, dropout: 0, targetModules: ['q'] }, { seed: 0 });
    await saveLoraAdapter(dir, lora);
    await saveModel(dir, m);
    m.dispose();
    const name = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
    relabel(join(dir, 'adapter_model.safetensors'), name, 'F32', 'I32');
    await expect(loadModel(dir)).rejects.toThrow(
      new RegExp(
        `adapter_model\\.safetensors: tensor '${name.replaceAll('.', '\\.')}' is stored as I32`,
      ),
    );
  });
});
