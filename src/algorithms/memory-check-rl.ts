import type { RlConfig } from '../config/schema.js';
import type { ModelConfig } from '../policy/config.js';
import { readModelConfig } from '../policy/io.js';
import { type MemoryJob, predictMemory } from '../policy/memory.js';
import { type ActorMemory, gib } from './memory-check.js';
import { oldLogpFromGenerator, oldLogpInStep, sharesWeights } from './rl/topology.js';

/*
 * "Will it fit" for the online algorithms (PPO, GRPO, RLOO, REINFORCE++), asked before any actor
 * starts: each actor of RL_TOPOLOGY (rl/topology.ts) on its placement, with what it computes.
 *
 *   policy     a training step on one micro-batch of the rollout (rows / miniBatches / replicas /
 *              gradAccum, prompt + response tokens), and, unless π_old is the step's own
 *              (oldLogpInStep) or the generator's (oldLogpFromGenerator), a forward of the
 *              whole rollout for the old log-probs
 *   generator  its own fp32 copy of the weights, the prefill of every row and the KV cache of
 *              prompt + response tokens; sharing the policy's tensors (colocated with it), the
 *              prefill and the cache are a pass of the policy's thread instead
 *   reference  a frozen copy, a forward of the whole rollout (when a KL is used)
 *   critic     a training step with its value head (gae), and a forward of the rollout for values
 *   reward     each `model` source: a frozen model with its score head, a forward of the rollout
 *              (the reward actor runs on cpu unless placed)
 *
 * An actor colocated with another (`actors.X.colocateWith`) adds its peak to that thread's.
 * Under its thread's precision bf16 a frozen model (generator, reference, reward) holds its
 * matrices as bf16 (predictMemory's bf16Weights: host memory, outside a wasm heap; its load is
 * fp32 on the backend first); the policy and critic keep fp32 masters.
 */

/** The reward sources' model configs (the `model` ones, paths already resolved). */
export async function rewardModelConfigs(
  sources: RlConfig['reward']['sources'],
): Promise<{ name: string; config: ModelConfig }[]> {
  const out: { name: string; config: ModelConfig }[] = [];
  for (const [i, s] of sources.entries()) {
    if (s.type !== 'model' || typeof s['path'] !== 'string') continue;
    out.push({ name: s.name ?? `model ${i}`, config: await readModelConfig(s['path']) });
  }
  return out;
}

const usesReference = (c: RlConfig) => c.rl.kl.mode !== 'none' && c.rl.kl.coef > 0;

/**
 * The actors of an RL run and what each holds. `critic`: the critic's model config (critic.path's,
 * else the policy's); `rewardModels`: rewardModelConfigs of the reward sources.
 */
export function rlActors(
  c: RlConfig,
  model: ModelConfig,
  critic: ModelConfig = model,
  rewardModels: readonly { name: string; config: ModelConfig }[] = [],
): ActorMemory[] {
  const rows = c.train.batchSize * c.rollout.samplesPerPrompt;
  const seq = c.data.maxLength + c.rollout.maxNewTokens;
  const place = (name: string) => c.actors?.[name];
  // A colocated actor runs at its host's precision (actors/topology.ts refuses another).
  const precisionOf = (name: string): 'fp32' | 'bf16' => {
    const seen = new Set<string>();
    let at = name;
    while (place(at)?.colocateWith && !seen.has(at)) {
      seen.add(at);
      at = place(at)!.colocateWith!;
    }
    return place(at)?.precision ?? place(name)?.precision ?? c.runtime.precision;
  };
  const frozen = (job: MemoryJob, actor: string): MemoryJob => ({
    ...job,
    precision: precisionOf(actor),
  });
  const backendOf = (name: string) => place(name)?.backend ?? c.runtime.backend;
  const policyReplicas = place('policy')?.replicas ?? c.runtime.replicas;
  const criticReplicas = place('critic')?.replicas ?? 1;
  const micro = (replicas: number) =>
    Math.max(1, Math.ceil(rows / (c.rl.miniBatches * replicas * c.train.gradAccum)));
  const train = (config: ModelConfig, replicas: number, heads?: MemoryJob['heads']): MemoryJob => ({
    config,
    method: c.model.lora ? 'lora' : 'full',
    ...(c.model.lora ? { lora: c.model.lora } : {}),
    ...(heads ? { heads } : {}),
    batch: micro(replicas),
    seq,
    checkpoint: c.model.gradientCheckpointing,
    offloadOptimizer: c.optim.offload,
  });
  const forward = (config: ModelConfig, heads?: MemoryJob['heads']): MemoryJob => ({
    config,
    method: 'none',
    ...(heads ? { heads } : {}),
    batch: rows,
    seq,
  });
  const scoring = (job: MemoryJob, what: string) => {
    const p = predictMemory(job);
    return { what: `${what} (${rows}×${seq} tokens, ${gib(p.peak - p.weights)})`, job };
  };
  const generation: MemoryJob = {
    config: model,
    method: 'none',
    batch: rows,
    seq: c.data.maxLength,
    generation: { batch: rows, length: seq },
  };

  const actors: (ActorMemory & { colocateWith?: string })[] = [];
  const add = (a: ActorMemory) => actors.push({ ...a, colocateWith: place(a.actor)?.colocateWith });
  add({
    actor: 'policy',
    backend: backendOf('policy'),
    job: train(model, policyReplicas),
    phases: [
      ...(oldLogpInStep(c) || oldLogpFromGenerator(c)
        ? []
        : [scoring(forward(model), 'old log-probs of the rollout')]),
      ...(sharesWeights(c) ? [scoring(generation, 'generation with its KV cache')] : []),
    ],
    replicas: policyReplicas,
  });
  if (!sharesWeights(c))
    add({
      actor: 'generator',
      backend: backendOf('generator'),
      job: frozen(generation, 'generator'),
    });
  if (usesReference(c))
    add({
      actor: 'reference',
      backend: backendOf('reference'),
      job: frozen(forward(model), 'reference'),
    });
  if (c.rl.estimator === 'gae') {
    add({
      actor: 'critic',
      backend: backendOf('critic'),
      job: train(critic, criticReplicas, ['value_head']),
      phases: [scoring(forward(critic, ['value_head']), 'values of the rollout')],
      replicas: criticReplicas,
    });
  }
  if (rewardModels.length > 0) {
    const [first, ...rest] = rewardModels.map((m) =>
      frozen(forward(m.config, ['score']), 'reward'),
    );
    add({
      actor: 'reward',
      backend: place('reward')?.backend ?? 'cpu',
      job: first,
      colocated: rest.map((job, i) => ({ actor: `reward '${rewardModels[i + 1].name}'`, job })),
    });
  }
  // A colocated actor's peak joins its host's thread (following colocateWith to an actor that
  // is not colocated itself); the generator sharing the policy's weights is a pass of the policy.
  const byName = new Map(actors.map((a) => [a.actor, a]));
  const rootOf = (a: (typeof actors)[number]): string => {
    const seen = new Set<string>();
    let at = a;
    while (at.colocateWith && byName.has(at.colocateWith) && !seen.has(at.actor)) {
      seen.add(at.actor);
      at = byName.get(at.colocateWith)!;
    }
    return at.actor;
  };
  const hosts = actors.filter((a) => rootOf(a) === a.actor);
  return hosts.map(({ colocateWith: _, ...h }) => {
    const guests = actors.filter((a) => a !== byName.get(h.actor) && rootOf(a) === h.actor);
    if (guests.length === 0) return h;
    return {
      ...h,
      colocated: [
        ...(h.colocated ?? []),
        ...guests.flatMap((g) => [{ actor: g.actor, job: g.job }, ...(g.colocated ?? [])]),
      ],
    };
  });
}
