import { describe, expect, it } from 'vitest';
import {
  callRates,
  median,
  summarise,
  type TorchSuiteRow,
  torchTable,
} from '../../bench/suites/torch.js';
import { blasCoreType, torchPythons } from '../../bench/suites/torch-child.js';

/** The torch suite's bookkeeping (no timing: the figures are hand-made). */
describe('bench torch suite', () => {
  const AVX512 = ['fma', 'avx2', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl'];

  it('sets one OpenBLAS kernel class for both sides, by the addon rule', () => {
    expect(blasCoreType({ TROUPE_BLAS_CORETYPE: 'Zen', OPENBLAS_CORETYPE: 'Haswell' }, [])).toBe(
      'Zen',
    );
    expect(blasCoreType({ OPENBLAS_CORETYPE: 'Haswell' }, AVX512)).toBe('Haswell');
    expect(blasCoreType({}, AVX512)).toBe('SkylakeX');
    expect(blasCoreType({ TROUPE_BLAS_CORETYPE: '' }, AVX512)).toBe('SkylakeX');
    expect(
      blasCoreType(
        {},
        AVX512.filter((f) => f !== 'avx512vl'),
      ),
    ).toBeUndefined();
  });

  it("turns a model-child row's per-call times into per-call rates", () => {
    // 100 tokens/s at the median call of 50 ms: 5 tokens a call
    expect(callRates({ value: 100, ms: 50, runsMs: [40, 50, 100] })).toEqual([125, 100, 50]);
    expect(callRates({ value: 100 })).toEqual([]);
  });

  it('takes the median of the rounds and the extreme calls of all rounds', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    const rows = summarise(
      new Map([
        ['train|small|Troupe fp32|1|tokens/s', { rounds: [10, 30, 20], calls: [9, 12, 35, 18] }],
        ['peak RSS|small|Troupe fp32|1|bytes', { rounds: [5], calls: [] }],
      ]),
    );
    expect(rows[0]).toMatchObject({
      figure: 'train',
      config: 'small',
      side: 'Troupe fp32',
      threads: 1,
      unit: 'tokens/s',
      value: 20,
      min: 9,
      max: 35,
      calls: 4,
    });
    expect(rows[1].min).toBeUndefined();
  });

  it('writes each side, the noise and the ratios (peak RSS: lower is better)', () => {
    const row = (
      figure: string,
      side: string,
      value: number,
      unit = 'tokens/s',
      threads = 1,
    ): TorchSuiteRow => ({
      figure,
      config: 'small',
      side,
      threads,
      unit,
      value,
      rounds: [value],
      ...(unit === 'bytes' ? {} : { min: value / 2, max: value * 2 }),
      calls: unit === 'bytes' ? 0 : 5,
    });
    const sides = ['Troupe fp32', 'Troupe bf16', 'PyTorch 2.13 fp32', 'PyTorch 2.13 bf16'];
    const md = torchTable(
      [
        row('train', 'Troupe fp32', 200),
        row('train', 'Troupe bf16', 300),
        row('train', 'PyTorch 2.13 fp32', 100),
        row('train', 'PyTorch 2.13 bf16', 600),
        row('train', 'Troupe fp32', 50, 'tokens/s', 2),
        row('peak RSS', 'Troupe fp32', 2 * 2 ** 20, 'bytes'),
        row('peak RSS', 'PyTorch 2.13 fp32', 2 ** 20, 'bytes'),
      ],
      sides,
      { rounds: 2, core: 'SkylakeX', load: [{ start: [1.5], end: [2] }], kernels: {} },
    );
    const lines = md.split('\n');
    expect(lines[0]).toContain('SkylakeX');
    expect(lines[0]).toContain('1.5/2.0');
    expect(lines).toContain(
      '| train (tokens/s) | small | 1 | 200 (100–400) | 300 (150–600) | 100 (50.0–200) | 600 (300–1200) | 2.00 | 0.50 | 0.50 |',
    );
    expect(lines).toContain(
      '| train (tokens/s) | small | 2 | 50.0 (25.0–100) | — | — | — | — | — | — |',
    );
    expect(lines).toContain('| peak RSS | small | 1 | 2 MB | — | 1 MB | — | 0.50 | — | 0.50 |');
  });

  it('skips interpreters that do not exist', () => {
    const found = torchPythons({
      TROUPE_TORCH_PYTHON: '/nonexistent/python',
      TROUPE_REFERENCE_VENV: '/nonexistent',
    });
    expect(found.every((p) => !p.python.startsWith('/nonexistent'))).toBe(true);
    expect(new Set(found.map((p) => p.torch)).size).toBe(found.length);
  });
});
