import { describe, expect, it } from 'vitest';
import {
  describePlacement,
  type PlacedActor,
  resolvePlacement,
} from '../../src/algorithms/launch.js';
import { RL_TOPOLOGY } from '../../src/algorithms/rl/topology.js';
import { placementOf } from '../../src/algorithms/topologies.js';
import { loadConfig } from '../../src/config/load.js';
import type { DpoConfig, LmConfig, RlConfig } from '../../src/config/schema.js';
import { planBlasThreads } from '../../src/kernels/native.js';

const base = {
  output: '/tmp/x',
  model: { path: 'some/model' },
  data: { train: 'train.jsonl' },
  train: { steps: 10, batchSize: 8 },
};
const rl = (algorithm: string, extra: Record<string, unknown> = {}) =>
  loadConfig<RlConfig>(algorithm, {
    object: { ...base, reward: { sources: [{ type: 'sentiment' }] }, ...extra },
  });
const byName = (actors: readonly PlacedActor[]) =>
  Object.fromEntries(actors.map(({ name, ...rest }) => [name, rest]));

describe('placement: the defaults are what runs did before actors.* existed', () => {
  it('grpo: every model actor on runtime.backend/device, the reward actor on cpu, replicas from runtime', async () => {
    const c = await rl('grpo', { runtime: { backend: 'wasm', device: 'cpu', replicas: 2 } });
    const p = placementOf(c);
    // policy × 2, generator, reference (GRPO's KL loss term) compute; the reward actor does not.
    expect(p.computing).toBe(4);
    const blas = planBlasThreads(4, undefined);
    expect(p.blasThreads).toBe(blas);
    const model = { backend: 'wasm', device: 'cpu', blasThreads: blas, computes: true };
    expect(byName(p.actors)).toEqual({
      policy: { ...model, thread: 'policy/0…1', replicas: 2, trainable: true },
      generator: { ...model, thread: 'generator', replicas: 1, trainable: false },
      reward: {
        backend: 'cpu',
        blasThreads: blas,
        thread: 'reward',
        replicas: 1,
        trainable: false,
        computes: false,
      },
      reference: { ...model, thread: 'reference', replicas: 1, trainable: false },
    });
    // The thread plan is the one the hand-written starter made: one per replica, then the rest.
    expect(p.topology.actors.map((a) => [a.name, a.replicas, a.backend])).toEqual([
      ['policy', 2, 'wasm'],
      ['generator', 1, 'wasm'],
      ['reward', 1, 'cpu'],
      ['reference', 1, 'wasm'],
    ]);
  });

  it('ppo has a critic (gae) of one replica; no KL means no reference', async () => {
    const ppo = placementOf(await rl('ppo', { runtime: { replicas: 2 } }));
    expect(ppo.actors.map((a) => a.name)).toEqual([
      'policy',
      'generator',
      'reward',
      'reference',
      'critic',
    ]);
    expect(byName(ppo.actors)['critic']).toMatchObject({ replicas: 1, trainable: true });
    expect(ppo.computing).toBe(2 + 1 + 1 + 1);
    const noKl = placementOf(await rl('grpo', { rl: { kl: { mode: 'none' } } }));
    expect(noKl.actors.map((a) => a.name)).toEqual(['policy', 'generator', 'reward']);
  });

  it('dpo: a reference only for losses whose registry entry needs one; it computes only when it is live', async () => {
    const dpo = (d: Record<string, unknown>) =>
      loadConfig<DpoConfig>('dpo', { object: { ...base, dpo: d, runtime: { replicas: 2 } } });
    const pre = placementOf(await dpo({}));
    expect(pre.actors.map((a) => [a.name, a.replicas, a.computes])).toEqual([
      ['dpo', 2, true],
      ['reference', 1, false],
    ]);
    expect(pre.computing).toBe(2);
    expect(placementOf(await dpo({ reference: 'actor' })).computing).toBe(3);
    expect(placementOf(await dpo({ loss: 'kto' })).computing).toBe(3);
    expect(placementOf(await dpo({ loss: 'simpo' })).actors.map((a) => a.name)).toEqual(['dpo']);
    expect(placementOf(await dpo({ loss: 'orpo' })).actors.map((a) => a.name)).toEqual(['dpo']);
  });

  it('pretrain: N policy replicas and nothing else', async () => {
    const c = await loadConfig<LmConfig>('pretrain', {
      object: { ...base, runtime: { replicas: 2 } },
    });
    const p = placementOf(c);
    expect(p.actors.map((a) => [a.name, a.thread, a.replicas])).toEqual([
      ['policy', 'policy/0…1', 2],
    ]);
    expect(p.computing).toBe(2);
  });
});

describe('placement: actors.<name>', () => {
  it('colocates the reference with the policy (one thread, its runtime), puts the reward on wasm, gives the generator its own BLAS threads', async () => {
    const c = await rl('grpo', {
      runtime: { backend: 'cpu', blasThreads: 1 },
      actors: {
        reference: { colocateWith: 'policy' },
        reward: { backend: 'wasm' },
        generator: { blasThreads: 2 },
      },
    });
    const p = placementOf(c);
    const a = byName(p.actors);
    expect(a['reference']).toMatchObject({
      thread: 'policy+reference',
      backend: 'cpu',
      blasThreads: 1,
      colocateWith: 'policy',
    });
    expect(a['policy']).toMatchObject({ thread: 'policy+reference', backend: 'cpu' });
    expect(a['reward']).toMatchObject({ thread: 'reward', backend: 'wasm' });
    expect(a['generator']).toMatchObject({ blasThreads: 2 });
    // The shared thread counts once among the computing ones.
    expect(p.computing).toBe(2);
    expect(describePlacement(p)).toEqual([
      'policy+reference (policy, reference): backend cpu, device default, 1 BLAS thread',
      'generator: backend cpu, device default, 2 BLAS threads',
      'reward: backend wasm, device default, 1 BLAS thread',
    ]);
    // A colocated reward takes its host's backend, not its own cpu default.
    const shared = placementOf(
      await rl('grpo', {
        runtime: { backend: 'wasm' },
        actors: { reward: { colocateWith: 'policy' } },
      }),
    );
    expect(byName(shared.actors)['reward']).toMatchObject({
      backend: 'wasm',
      thread: 'policy+reward',
    });
  });

  it('an actor colocated with a replicated learner runs one instance beside each replica (the hybrid engine)', async () => {
    const c = await rl('grpo', {
      runtime: { backend: 'wasm' },
      actors: {
        policy: { replicas: 2 },
        generator: { colocateWith: 'policy' },
        reference: { colocateWith: 'policy' },
      },
    });
    const p = placementOf(c);
    const a = byName(p.actors);
    for (const name of ['policy', 'generator', 'reference']) {
      expect(a[name]).toMatchObject({ replicas: 2, thread: 'policy+generator+reference/0…1' });
    }
    // two computing threads (the reward actor does not compute): one BLAS thread each on 2 cores
    expect(p.computing).toBe(2);
    const ppo = placementOf(
      await rl('ppo', { actors: { policy: { replicas: 2 }, critic: { colocateWith: 'policy' } } }),
    );
    expect(byName(ppo.actors)['critic']).toMatchObject({ replicas: 2, trainable: true });
    await expect(
      rl('ppo', {
        actors: { policy: { replicas: 2 }, critic: { colocateWith: 'policy', replicas: 3 } },
      }).then(placementOf),
    ).rejects.toThrow(
      "actors.critic.replicas: a colocated actor runs one instance beside each replica of 'policy' (2): set replicas: 2",
    );
  });

  it('replicas of the main learner split the batch (the config checks batchSize against them)', async () => {
    const c = await rl('ppo', { actors: { policy: { replicas: 2 }, critic: { replicas: 2 } } });
    const a = byName(placementOf(c).actors);
    expect([a['policy'].replicas, a['critic'].replicas]).toEqual([2, 2]);
    await expect(rl('grpo', { actors: { policy: { replicas: 3 } } })).rejects.toThrow(
      'train.batchSize: batchSize 8 must be a multiple of actors.policy.replicas × train.gradAccum = 3',
    );
  });

  it.each([
    [{ polcy: {} }, "actors: unknown key 'polcy'"],
    [
      { reward: { replicas: 2 } },
      "actors.reward.replicas: only trainable actors (policy, critic) run as data-parallel replicas; 'reward' is one actor",
    ],
    [{ reward: { device: 'cuda' } }, "actors.reward.device: Invalid device 'cuda'"],
    [
      { reward: { colocateWith: 'judge' } },
      "actors.reward.colocateWith: 'judge' is not an actor of grpo",
    ],
    [
      { reward: { colocateWith: 'reward' } },
      'actors.reward.colocateWith: an actor cannot colocate with itself',
    ],
    [{ reward: { backend: 'tpu' } }, 'actors.reward.backend'],
  ])('config load refuses %j: %s', async (actors, message) => {
    await expect(rl('grpo', { actors })).rejects.toThrow(message);
  });

  it.each([
    [
      { critic: { backend: 'wasm' } },
      "actors.critic: this grpo run has no 'critic' actor (its actors: policy, generator, reward, reference); remove the entry",
    ],
    [
      { reference: { colocateWith: 'critic' } },
      "actors.reference.colocateWith: this grpo run has no 'critic' actor",
    ],
    [
      { reference: { colocateWith: 'policy', backend: 'cpu' } },
      "actors.reference.backend: a colocated actor shares 'policy''s backend (wasm); remove 'backend' here",
    ],
    [
      { reference: { colocateWith: 'policy', blasThreads: 3 } },
      "actors.reference.blasThreads: a colocated actor shares 'policy''s thread and its BLAS threads",
    ],
    [
      { reference: { colocateWith: 'reward' }, reward: { colocateWith: 'policy' } },
      "actors.reference.colocateWith: 'reward' is itself colocated with 'policy': colocate with that one",
    ],
  ])('placement refuses %j: %s', async (actors, message) => {
    const c = await rl('grpo', { runtime: { backend: 'wasm' }, actors });
    expect(() => placementOf(c)).toThrow(message);
  });

  // #16 item 8 asks for this placement, which used to be refused (the generator read the
  // policy's shared-memory handle before it started): colocated, it samples with the policy's
  // own tensors and waits for nothing.
  it('colocates the generator with the policy: one thread, no start order, and a member that still reads its host is refused', async () => {
    const c = await rl('grpo', {
      runtime: { backend: 'wasm' },
      actors: { generator: { colocateWith: 'policy' } },
    });
    const p = placementOf(c);
    const a = byName(p.actors);
    expect(a['generator']).toMatchObject({ thread: 'policy+generator', colocateWith: 'policy' });
    expect(a['policy']).toMatchObject({ thread: 'policy+generator', backend: 'wasm' });
    // policy+generator and the reference compute; the reward actor does not.
    expect(p.computing).toBe(2);
    expect(describePlacement(p)[0]).toMatch(
      /^policy\+generator \(policy, generator\): backend wasm/,
    );
    expect(RL_TOPOLOGY.generator.needs).toBeTypeOf('function');
    const needs = RL_TOPOLOGY.generator.needs as (c: RlConfig) => readonly string[];
    expect(needs(c)).toEqual([]);
    expect(needs(await rl('grpo'))).toEqual(['policy']);
    // The rule the colocation used to trip stays: a member whose arguments read its host.
    const reading = { ...RL_TOPOLOGY, generator: { ...RL_TOPOLOGY.generator, needs: ['policy'] } };
    expect(() => resolvePlacement(reading, c)).toThrow(
      "actors.generator.colocateWith: 'generator' starts after 'policy' (its arguments read it), so the two cannot share a thread",
    );
    // Sampling ahead while the policy trains needs a thread of its own.
    await expect(
      rl('grpo', {
        rollout: { offPolicy: true },
        actors: { generator: { colocateWith: 'policy' } },
      }),
    ).rejects.toThrow('offPolicy');
  });
});
