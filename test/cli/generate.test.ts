import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHATML_TEMPLATE, renderChat } from '../../src/data/chat.js';
import type { ChatMessage } from '../../src/data/messages.js';
import { saveTokenizer, type Tokenizer, trainBpe } from '../../src/data/tokenizer/index.js';
import { gpt2Config } from '../../src/policy/config.js';
import { generate } from '../../src/policy/generate.js';
import { loadModel, saveModel } from '../../src/policy/io.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { useBackend } from '../helpers/backends.js';
import { cliArgs } from '../helpers/cli.js';

const troupe = (args: string[], input?: string) =>
  spawnSync(process.execPath, [...cliArgs(), ...args], {
    input,
    encoding: 'utf8',
    timeout: 120_000,
  });

const CONTEXT = 24;
const dir = mkdtempSync(join(tmpdir(), 'troupe-gen-'));
const modelDir = join(dir, 'model');
/** The same shape with room for a chat template's turns. */
const chatDir = join(dir, 'chat-model');
let tok: Tokenizer;

/** Greedy continuation of `ids` by a saved model, in this process. */
async function greedy(ids: number[], maxNewTokens: number, from = modelDir): Promise<number[]> {
  const model = await loadModel(from);
  const out = await generate(model, [ids], { maxNewTokens, temperature: 0, stopTokenIds: [] });
  model.dispose();
  return out.responses[0];
}

beforeAll(async () => {
  await useBackend('wasm');
  // No EOS: generation runs until --max-new-tokens or the context, never stopping early.
  tok = trainBpe(['the cat sat on the mat', 'a dog ran in the fog'], {
    vocabSize: 280,
    minFrequency: 1,
  });
  for (const [to, maxPositions] of [
    [modelDir, CONTEXT],
    [chatDir, 512],
  ] as const) {
    const config = gpt2Config({
      vocabSize: tok.vocabSize,
      hidden: 16,
      layers: 1,
      heads: 2,
      maxPositions,
    });
    const model = CausalLM.init(config, { seed: 2 });
    await saveModel(to, model);
    await saveTokenizer(to, tok);
    model.dispose();
  }
});

describe('troupe generate', () => {
  it("stops at the model's context and prints what it generated", async () => {
    const prompt = 'the cat sat on';
    const ids = tok.encode(prompt);
    const room = CONTEXT - ids.length;
    const r = troupe([
      'generate',
      '--model',
      modelDir,
      '--prompt',
      prompt,
      '--max-new-tokens',
      '50',
      '--temperature',
      '0',
      '--backend',
      'wasm',
    ]);
    expect(r.stderr).toContain(
      `stopped at the model's context (${CONTEXT} positions): ${room} of the 50 new tokens asked for`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${prompt}${tok.decode(await greedy(ids, room))}\n`);
  }, 120_000);

  it('refuses a prompt that fills the context, with both lengths', () => {
    const prompt = 'the cat sat on the mat '.repeat(4);
    const r = troupe(['generate', '--model', modelDir, '--prompt', prompt, '--backend', 'wasm']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `--prompt is ${tok.encode(prompt).length} tokens, and the model's context is ${CONTEXT} positions: nothing can follow it; shorten it`,
    );
  }, 120_000);
});

describe('troupe chat with input piped on stdin', () => {
  it('answers every line, in order, and exits 0 at the end of the input', async () => {
    const lines = ['the cat', 'a dog', 'the fog'];
    const r = troupe(
      [
        'chat',
        '--model',
        chatDir,
        '--temperature',
        '0',
        '--max-new-tokens',
        '2',
        '--backend',
        'wasm',
      ],
      `${lines.join('\n')}\n`,
    );
    expect(r.stderr).not.toContain('Error');
    expect(r.status).toBe(0);
    // The same conversation, turn by turn, in this process.
    const messages: ChatMessage[] = [];
    const want: string[] = [];
    for (const line of lines) {
      messages.push({ role: 'user', content: line });
      const text = renderChat(CHATML_TEMPLATE, messages, { addGenerationPrompt: true });
      const reply = tok
        .decode(await greedy(tok.encode(text, { addSpecialTokens: false }), 2, chatDir))
        .trim();
      messages.push({ role: 'assistant', content: reply });
      want.push(reply);
    }
    const replies = r.stdout
      .split('\n')
      .filter((l) => l.includes('model> '))
      .map((l) => l.slice(l.indexOf('model> ') + 7));
    expect(replies).toEqual(want);
    expect(want.every((w) => w.length > 0)).toBe(true);
  }, 120_000);
});
