import { loadExamples } from '../data/datasets/index.js';
import { dataError } from '../data/datasets/location.js';
import { RandomStream } from '../kernels/random.js';
import type { Constitution } from './constitution.js';
import { promptTurns, type Turn } from './dialogue.js';
import type { CaiModel } from './model.js';
import { conversationPrompt } from './prompts.js';
import { completionRow, type DialogueMode, helpfulCount } from './sl.js';

/*
 * The helpful samples SL-CAI mixes into its SFT data (the paper fine-tunes on revisions and on
 * the helpful model's answers to helpfulness prompts, so that harmlessness is not learnt at the
 * cost of helpfulness): rows of a file in the completion or messages convention (written in the
 * run's dialogue form, as the revisions are), or prompt rows answered by the SL model. As many
 * as make `fraction` of the SFT rows.
 */

export interface HelpfulSpec {
  readonly data: string;
  readonly columns?: Readonly<Record<string, string>>;
  readonly fraction: number;
}

export interface HelpfulContext {
  readonly seed: number;
  readonly model: CaiModel;
  readonly constitution: Constitution;
  readonly dialogue: DialogueMode;
  readonly generation: { maxNewTokens: number; temperature: number; topP: number };
  readonly batchSize: number;
  readonly log?: (message: string) => void;
}

export async function helpfulRows(
  spec: HelpfulSpec,
  revisionRows: number,
  x: HelpfulContext,
): Promise<Record<string, unknown>[]> {
  const want = helpfulCount(revisionRows, spec.fraction);
  if (want === 0) return [];
  const rows = await loadExamples(spec.data, { columns: spec.columns });
  const picked = RandomStream.of({ seed: x.seed, step: 0, actor: 'cai', purpose: 'helpful' })
    .shuffle(rows)
    .slice(0, want);
  if (picked.length < want) {
    x.log?.(
      `sl.helpful: ${spec.data} has ${rows.length} rows, fewer than the ${want} that make ${spec.fraction} of the SFT data: all are used`,
    );
  }
  const out: Record<string, unknown>[] = [];
  const toAnswer: Turn[][] = [];
  for (const e of picked) {
    if (e.kind === 'completion') {
      const reply =
        typeof e.completion === 'string'
          ? e.completion.trim()
          : e.completion.map((m) => m.content).join('\n');
      out.push(completionRow(x.constitution, x.dialogue, promptTurns(e.prompt), reply));
    } else if (e.kind === 'messages') {
      const last = e.messages.at(-1)!;
      if (last.role !== 'assistant' || e.messages.length < 2) {
        throw dataError(e.where, 'a helpful messages row must end with an assistant turn', {
          column: 'messages',
        });
      }
      const turns = promptTurns(e.messages.slice(0, -1));
      out.push(completionRow(x.constitution, x.dialogue, turns, last.content));
    } else if (e.kind === 'prompt') {
      toAnswer.push(promptTurns(e.prompt));
    } else {
      throw dataError(
        e.where,
        `sl.helpful reads completion, messages or prompt rows; this is a '${e.kind}' row`,
        { kind: e.kind },
      );
    }
  }
  for (let i = 0; i < toAnswer.length; i += x.batchSize) {
    const batch = toAnswer.slice(i, i + x.batchSize);
    const answers = await x.model.generate(
      batch.map((t) => conversationPrompt(x.constitution, t, 0)),
      {
        maxTokens: x.generation.maxNewTokens,
        temperature: x.generation.temperature,
        topP: x.generation.topP,
        key: { seed: x.seed, step: i / x.batchSize, purpose: 'sl-helpful' },
      },
    );
    for (const [j, t] of batch.entries())
      out.push(completionRow(x.constitution, x.dialogue, t, answers[j]));
  }
  return out;
}
