import type { TaskPool } from '../actors/pool.js';
import { lookup, TroupeError } from '../errors.js';
import { exactMatch, lengthPenalty, lexiconSentiment, regexReward } from './builtins.js';
import { moduleSource } from './function-source.js';
import { httpSource } from './http-source.js';
import { rewardModelSource } from './model-source.js';
import type { RewardSource } from './types.js';

/** What a spec-built source may need beyond its options (module sources need a pool). */
export interface RewardContext {
  readonly pool?: TaskPool;
  /** Where a source reports what it retries or works around (the reward actor's log). */
  readonly log?: (message: string, data?: Record<string, unknown>) => void;
}

type Factory = (options: Record<string, unknown>, ctx: RewardContext) => RewardSource;

function moduleFromSpec(o: Record<string, unknown>, ctx: RewardContext): RewardSource {
  const { name, path, exportName, timeoutMs, ...rest } = o;
  const extra = Object.keys(rest);
  if (extra.length > 0) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `module reward: unknown option${extra.length > 1 ? 's' : ''} ${extra.map((k) => `'${k}'`).join(', ')}. Known: name, path, exportName, timeoutMs.`,
    );
  }
  if (typeof path !== 'string' || path === '') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `module reward option 'path': must be a module path or file URL`,
    );
  }
  if (!ctx.pool) {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `module reward '${path}': needs a TaskPool in the context`,
    );
  }
  return moduleSource(
    typeof name === 'string' ? name : path,
    path,
    typeof exportName === 'string' ? exportName : 'default',
    { pool: ctx.pool, timeoutMs: timeoutMs as number | undefined },
  );
}

/** Reward source factories by spec `type`; one line per source kind. */
export const REWARD_BUILTINS: ReadonlyMap<string, Factory> = new Map<string, Factory>([
  ['exact-match', (o) => exactMatch(o)],
  ['regex', (o) => regexReward(o as Parameters<typeof regexReward>[0])],
  ['length', (o) => lengthPenalty(o as Parameters<typeof lengthPenalty>[0])],
  ['sentiment', (o) => lexiconSentiment(o)],
  ['module', moduleFromSpec],
  ['http', (o, ctx) => httpSource(o as Parameters<typeof httpSource>[0], { log: ctx.log })],
  ['model', (o) => rewardModelSource(o as Parameters<typeof rewardModelSource>[0])],
]);

export interface RewardSpec {
  readonly type: string;
  readonly [option: string]: unknown;
}

/** Build a source from config data: `{ type: 'regex', pattern: '^<think>' }`. */
export function rewardFromSpec(spec: RewardSpec, ctx: RewardContext = {}): RewardSource {
  if (typeof spec?.type !== 'string') {
    throw new TroupeError(
      'BAD_ARGUMENT',
      `reward spec needs a 'type' (one of ${[...REWARD_BUILTINS.keys()].join(', ')})`,
    );
  }
  const { type, ...options } = spec;
  return lookup(REWARD_BUILTINS, type, 'reward type')(options, ctx);
}
