import { afterAll, describe, expect, it } from 'vitest';
import { Supervisor } from '../../src/actors/supervisor.js';
import { parseTopology, planThreads } from '../../src/actors/topology.js';
import { Troupe } from '../../src/actors/troupe.js';
import { ECHO } from './fixtures/echo-role.js';

describe('topology spec', () => {
  it('fills defaults and plans one thread per replica, colocated actors folded into their host', () => {
    const t = parseTopology({
      actors: [
        { name: 'policy', role: 'policy', replicas: 2, device: 'cpu', backend: 'wasm' },
        { name: 'reference', role: 'reference', backend: 'cpu' },
        { name: 'reward', role: 'reward', colocateWith: 'reference' },
      ],
    });
    expect(t.actors[2]).toMatchObject({ replicas: 1, backend: 'auto' });
    expect(planThreads(t)).toEqual([
      {
        thread: 'policy/0',
        runtime: { backend: 'wasm', device: 'cpu' },
        actors: [{ name: 'policy/0', role: 'policy', replica: 0, replicas: 2 }],
      },
      {
        thread: 'policy/1',
        runtime: { backend: 'wasm', device: 'cpu' },
        actors: [{ name: 'policy/1', role: 'policy', replica: 1, replicas: 2 }],
      },
      {
        thread: 'reference+reward',
        runtime: { backend: 'cpu', device: undefined },
        actors: [
          { name: 'reference', role: 'reference', replica: 0, replicas: 1 },
          { name: 'reward', role: 'reward', replica: 0, replicas: 1 },
        ],
      },
    ]);
  });

  it('plans an actor colocated with replicas beside each of them', () => {
    const t = parseTopology({
      actors: [
        { name: 'policy', role: 'policy', replicas: 2 },
        { name: 'generator', role: 'generator', replicas: 2, colocateWith: 'policy' },
      ],
    });
    expect(planThreads(t).map((p) => [p.thread, p.actors])).toEqual([
      [
        'policy/0+generator/0',
        [
          { name: 'policy/0', role: 'policy', replica: 0, replicas: 2 },
          { name: 'generator/0', role: 'generator', replica: 0, replicas: 2 },
        ],
      ],
      [
        'policy/1+generator/1',
        [
          { name: 'policy/1', role: 'policy', replica: 1, replicas: 2 },
          { name: 'generator/1', role: 'generator', replica: 1, replicas: 2 },
        ],
      ],
    ]);
  });

  it.each([
    [{ actors: [] }, 'actors: a topology needs at least one actor'],
    [{ actors: [{ name: 'Policy', role: 'p' }] }, 'actors.0.name: lower-case letters'],
    [{ actors: [{ name: 'p', role: 'p', devise: 'cpu' }] }, 'actors.0: Unrecognized key'],
    [
      { actors: [{ name: 'p', role: 'p', device: 'cuda' }] },
      "actors.0.device: Invalid device 'cuda'",
    ],
    [
      {
        actors: [
          { name: 'p', role: 'p' },
          { name: 'p', role: 'q' },
        ],
      },
      'actors: actor names must be unique',
    ],
    [
      { actors: [{ name: 'r', role: 'r', colocateWith: 'x' }] },
      "actors.0.colocateWith: 'x' is not an actor",
    ],
    [
      {
        actors: [
          { name: 'p', role: 'p', replicas: 2 },
          { name: 'r', role: 'r', colocateWith: 'p' },
        ],
      },
      "actors.1.replicas: a colocated actor runs one instance beside each replica of 'p' (2): set replicas: 2",
    ],
    [
      {
        actors: [
          { name: 'p', role: 'p', device: 'cpu' },
          { name: 'r', role: 'r', colocateWith: 'p', device: 'gpu:0' },
        ],
      },
      "actors.1.device: a colocated actor shares 'p''s device",
    ],
  ])('rejects %j: %s', (input, message) => {
    expect(() => parseTopology(input)).toThrow(message);
  });
});

describe('launching a topology', () => {
  const sup = new Supervisor();
  afterAll(async () => {
    await sup.shutdown();
  });

  it('starts every actor where the spec says, typed by role', async () => {
    const t = parseTopology({
      actors: [
        { name: 'policy', role: 'echo', replicas: 2, backend: 'cpu' },
        { name: 'reference', role: 'echo', backend: 'cpu' },
        { name: 'reward', role: 'echo', colocateWith: 'reference' },
      ],
    });
    const troupe = await Troupe.launch(sup, t, {
      echo: { ref: ECHO, args: (p) => ({ tag: `${p.name}#${p.replica}/${p.replicas}` }) },
    });
    const policies = troupe.replicas(ECHO, 'policy');
    const who = await Promise.all(
      [...policies, troupe.actor(ECHO, 'reference'), troupe.actor(ECHO, 'reward')].map((a) =>
        a.call.whoAmI(),
      ),
    );
    expect(who.map((w) => w.tag)).toEqual([
      'policy/0#0/2',
      'policy/1#1/2',
      'reference#0/1',
      'reward#0/1',
    ]);
    expect(new Set(who.map((w) => w.threadId)).size).toBe(3);
    expect(who[2].threadId).toBe(who[3].threadId);
    expect(who.every((w) => w.backend === 'cpu')).toBe(true);
    expect(() => troupe.actor(ECHO, 'critic')).toThrow(
      "No actor 'critic'. Known: policy, reference, reward.",
    );
    await expect(Troupe.launch(sup, t, {})).rejects.toThrow(
      /plays role 'echo', which this algorithm does not provide/,
    );
  });
});
