import { describe, expect, it } from 'vitest';
import { rlJobs } from '../../bench/suites/rl.js';

describe('bench rl suite job selector (TROUPE_RL_ONLY)', () => {
  it('times both jobs unless one is named', () => {
    expect(rlJobs(undefined)).toEqual({ ppo: true, grpo: true });
    expect(rlJobs('')).toEqual({ ppo: true, grpo: true });
    expect(rlJobs('grpo')).toEqual({ ppo: false, grpo: true });
    expect(rlJobs('ppo')).toEqual({ ppo: true, grpo: false });
  });

  it('refuses another value, naming the variable', () => {
    expect(() => rlJobs('GRPO ')).toThrow(/TROUPE_RL_ONLY.*'GRPO '/);
  });
});
