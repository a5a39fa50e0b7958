import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainLm } from '../algorithms/lm.js';
import { trainPreference } from '../algorithms/preference.js';
import { trainRl } from '../algorithms/rl.js';
import { loadConfig } from '../config/load.js';
import type { DpoConfig, PretrainConfig, RlConfig, RmConfig, SftConfig } from '../config/schema.js';
import { loadTokenizer } from '../data/tokenizer/index.js';
import { RandomStream } from '../kernels/random.js';
import { startRuntime } from '../kernels/runtime.js';
import { generate } from '../policy/generate.js';
import { loadModel } from '../policy/io.js';
import { formatValue } from '../train/format.js';
import { type CommandSpec, helpOf, intOption, parseOptions, usageOf } from './options.js';
import { terminalEvents } from './train.js';

export const DEMO_SPEC: CommandSpec = {
  name: 'demo',
  summary:
    'the built-in end-to-end job on shipped data: tokenizer + pretraining with eval and a sample, a reward model and DPO from that checkpoint, SFT then GRPO on arithmetic',
  options: [
    {
      name: 'output',
      type: 'string',
      value: 'DIR',
      help: 'where the run directories go (default: a new directory under the system temp dir)',
    },
    {
      name: 'steps',
      type: 'string',
      value: 'N',
      default: '300',
      help: 'pretraining steps (the reward model and DPO take a fifth as many)',
    },
    {
      name: 'backend',
      type: 'string',
      value: 'NAME',
      default: 'auto',
      help: 'tensor backend of every actor',
    },
  ],
};

export const DEMO_USAGE = usageOf(DEMO_SPEC);

/** The data that ships with Troupe (`data/` beside `dist/` or `src/`). */
export const SHIPPED_DATA = fileURLToPath(new URL('../../data/', import.meta.url));

/**
 * The built-in end-to-end job: train a BPE tokenizer and pretrain a small GPT-2 on Moby-Dick
 * (shipped), evaluating before and after, then sample from the checkpoint. No download.
 */
export async function runDemo(args: string[], log: (line: string) => void): Promise<number> {
  const parsed = parseOptions(DEMO_SPEC, args);
  if (!parsed) {
    process.stdout.write(helpOf(DEMO_SPEC));
    return 0;
  }
  const values = {
    output:
      (parsed.values['output'] as string | undefined) ??
      join(tmpdir(), `troupe-demo-${Date.now()}`),
    backend: parsed.values['backend'] as string,
  };
  const steps = intOption(parsed.values, 'steps', 3);
  const config = await loadConfig<PretrainConfig>('pretrain', {
    object: {
      output: values.output,
      seed: 0,
      model: {
        init: { family: 'gpt2', hidden: 128, layers: 4, heads: 4, maxPositions: 128 },
        tokenizer: { train: { vocabSize: 1024, minFrequency: 2 } },
      },
      data: {
        train: join(SHIPPED_DATA, 'moby-dick', 'train.jsonl'),
        eval: join(SHIPPED_DATA, 'moby-dick', 'eval.jsonl'),
        blockSize: 64,
      },
      optim: { lr: 2e-3, warmupSteps: Math.min(30, Math.floor(steps / 10)), weightDecay: 0.1 },
      train: {
        steps,
        batchSize: 8,
        evalEvery: Math.max(1, Math.floor(steps / 3)),
        evalBatches: 8,
        saveEvery: 0,
      },
      runtime: { backend: values.backend },
    },
  });
  log(
    'Troupe demo: pretrain a 4-layer GPT-2 (d 128) with a 1,024-token BPE trained here, on Moby-Dick (shipped).',
  );
  log(`run directory: ${config.output}`);
  const { events, progress } = terminalEvents();
  const evals: Array<[number, Readonly<Record<string, number>>]> = [];
  const r = await trainLm(config, {
    events: {
      ...events,
      onMetrics: (split, step, v) => {
        if (split === 'eval') evals.push([step, v]);
        events.onMetrics(split, step, v);
      },
    },
  });
  progress.finish();
  const [first, last] = [evals[0], evals[evals.length - 1]];
  log(
    `eval loss ${formatValue(first[1]['loss'])} (step ${first[0]}) → ${formatValue(last[1]['loss'])} (step ${last[0]}); perplexity ${formatValue(first[1]['perplexity'])} → ${formatValue(last[1]['perplexity'])}`,
  );
  await startRuntime({ backend: values.backend as never });
  const model = await loadModel(r.checkpoint!);
  const tok = await loadTokenizer(r.checkpoint!);
  const prompt = 'Call me Ishmael. Some years ago';
  const g = await generate(model, [tok.encode(prompt)], {
    maxNewTokens: 48,
    temperature: 0.8,
    topK: 40,
    rng: RandomStream.of({ seed: 0, step: 0, actor: 'demo', purpose: 'sample' }),
  });
  model.dispose();
  log(`sample: ${prompt}${tok.decode(g.responses[0])}`);
  log(`report: ${join(r.runDir, 'report.html')}`);

  // Offline preference learning from the pretrained checkpoint, on shipped sentiment pairs.
  const prefSteps = Math.max(10, Math.round(steps / 5));
  const preference = (algorithm: 'rm' | 'dpo', extra: Record<string, unknown>) =>
    loadConfig<RmConfig | DpoConfig>(algorithm, {
      object: {
        output: join(values.output, algorithm),
        model: { path: r.checkpoint },
        data: {
          train: join(SHIPPED_DATA, 'sentiment', 'preferences.jsonl'),
          evalFraction: 0.1,
          maxLength: 96,
        },
        optim: { lr: algorithm === 'dpo' ? 1e-3 : 5e-4, schedule: 'constant', warmupSteps: 5 },
        train: {
          steps: prefSteps,
          batchSize: 16,
          evalEvery: 0,
          evalBatches: 4,
          saveEvery: prefSteps,
        },
        runtime: { backend: values.backend },
        ...extra,
      },
    });
  for (const [algorithm, extra, metric, what] of [
    ['rm', {}, 'rm/accuracy', 'reward model: held-out pair accuracy'],
    [
      'dpo',
      { dpo: { beta: 0.1, reference: 'actor' } },
      'rewards/accuracies',
      'DPO: held-out preference accuracy',
    ],
  ] as const) {
    log(
      `\n${algorithm.toUpperCase()} on ${prefSteps} steps of positive-vs-negative review pairs (shipped), from the checkpoint`,
    );
    const seen: Array<Readonly<Record<string, number>>> = [];
    const pr = await trainPreference(await preference(algorithm, extra), {
      events: {
        ...events,
        onMetrics: (split, step, v) => {
          events.onMetrics?.(split, step, v); // the terminal's `eval @ step` lines
          if (split === 'eval') seen.push(v);
        },
      },
    });
    progress.finish();
    log(
      `${what} ${formatValue(seen[0][metric])} → ${formatValue(seen.at(-1)![metric])} (run directory ${pr.runDir})`,
    );
  }

  // Online RL: examples/sft-arithmetic.yaml → examples/grpo-arithmetic.yaml at the CI profile.
  log(
    '\nGRPO on shipped arithmetic: SFT a 2-layer GPT-2 on a+b demonstrations of which 60 % are off by one, then GRPO with an exact-match verifier',
  );
  const arith = join(SHIPPED_DATA, 'arithmetic');
  const sft = await trainLm(
    await loadConfig<SftConfig>('sft', {
      object: {
        output: join(values.output, 'sft-arithmetic'),
        model: {
          init: { family: 'gpt2', hidden: 64, layers: 2, heads: 4, maxPositions: 16 },
          tokenizer: { train: { vocabSize: 260, minFrequency: 2 } },
        },
        data: { train: join(arith, 'sft-noisy.jsonl'), format: 'completion', maxLength: 16 },
        optim: { lr: 3e-3, weightDecay: 0, schedule: 'cosine', warmupSteps: 20 },
        train: { steps: 600, batchSize: 32, evalEvery: 0, saveEvery: 600, keepLast: 1 },
        runtime: { backend: values.backend },
      },
    }),
    { events },
  );
  progress.finish();
  const accuracy: number[] = [];
  const rl = await trainRl(
    await loadConfig<RlConfig>('grpo', {
      object: {
        output: join(values.output, 'grpo-arithmetic'),
        model: { path: sft.checkpoint },
        data: {
          train: join(arith, 'train.jsonl'),
          eval: join(arith, 'eval.jsonl'),
          maxLength: 16,
        },
        optim: { lr: 3e-4, weightDecay: 0, schedule: 'constant', warmupSteps: 5 },
        train: { steps: 20, batchSize: 16, evalEvery: 0, evalBatches: 0, saveEvery: 20 },
        rollout: { samplesPerPrompt: 8, maxNewTokens: 4 },
        rl: { miniBatches: 2 },
        reward: { sources: [{ type: 'exact-match', column: 'answer' }] },
        runtime: { backend: values.backend },
      },
    }),
    {
      events: {
        ...events,
        onMetrics: (split, step, v) => {
          events.onMetrics?.(split, step, v);
          if (split === 'eval') accuracy.push(v['reward/exact-match']);
        },
      },
    },
  );
  progress.finish();
  log(
    `GRPO: held-out exact match (200 unseen problems, greedy) ${formatValue(accuracy[0])} → ${formatValue(accuracy.at(-1)!)} (run directory ${rl.runDir})`,
  );
  return 0;
}
