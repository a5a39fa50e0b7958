import { TroupeError } from '../../errors.js';
import type { RopeScaling } from '../config.js';
import { Fields } from './hf-fields.js';
import type { Raw } from './hf-tables.js';

/*
 * RoPE in config.json both ways (hf-config.ts): transformers 5's `rope_parameters` (and 4's
 * `rope_scaling` / `rope_theta`) read into theta and scaling, and written back.
 */

const ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'llama3'] as const;

/** One RoPE dict (`rope_parameters`, or transformers 4's `rope_scaling`) → theta and scaling. */
export function readRopeDict(
  r: Fields,
  fallbackTheta: number,
  top: Fields,
): { theta: number; scaling?: RopeScaling; partial?: number } {
  const type = r.has('rope_type') ? r.str('rope_type', '') : r.str('type', 'default');
  r.has('type'); // transformers 4 wrote both
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new TroupeError(
      'UNSUPPORTED',
      `${r.source}: '${r.path}rope_type' is '${type}'; supported RoPE types: ${ROPE_TYPES.join(', ')}`,
      { details: { file: r.source, field: `${r.path}rope_type`, known: [...ROPE_TYPES] } },
    );
  }
  const theta = r.num('rope_theta', fallbackTheta);
  const partial = r.optNum('partial_rotary_factor');
  // Phi-3 keeps the pretraining length beside rope_parameters; transformers prefers it there
  const original = () =>
    top.optInt('original_max_position_embeddings') ??
    r.optInt('original_max_position_embeddings') ??
    top.int('max_position_embeddings');
  const factor = () => r.num('factor', Number.NaN);
  let scaling: RopeScaling | undefined;
  switch (type) {
    case 'default':
      scaling = undefined;
      break;
    case 'linear':
    case 'dynamic':
      scaling = { type, factor: factor() };
      break;
    case 'llama3':
      scaling = {
        type,
        factor: factor(),
        lowFreqFactor: r.num('low_freq_factor', Number.NaN),
        highFreqFactor: r.num('high_freq_factor', Number.NaN),
        originalMaxPositions: original(),
      };
      break;
    case 'yarn': {
      const originalMaxPositions = original();
      const f = r.optNum('factor') ?? top.int('max_position_embeddings') / originalMaxPositions;
      scaling = {
        type,
        factor: f,
        originalMaxPositions,
        attentionFactor: r.optNum('attention_factor'),
        betaFast: r.optNum('beta_fast'),
        betaSlow: r.optNum('beta_slow'),
        mscale: r.optNum('mscale'),
        mscaleAllDim: r.optNum('mscale_all_dim'),
        truncate: r.has('truncate') ? r.bool('truncate', true) : undefined,
      };
      break;
    }
  }
  r.checkAllRead(new Set(), `RoPE (${type})`);
  return { theta, scaling, partial };
}

/** The RoPE of a config with one RoPE for all layers: theta, scaling, partial rotary. */
export function readRope(
  f: Fields,
  defaultTheta: number,
): { ropeTheta: number; ropeScaling?: RopeScaling; partialRotary: number } {
  const params = f.obj('rope_parameters');
  const legacy = f.obj('rope_scaling');
  const theta = f.num('rope_theta', defaultTheta);
  const topPartial = f.optNum('partial_rotary_factor');
  // transformers 5: rope_scaling, when present, replaces rope_parameters
  const dict = legacy ?? params;
  const path = legacy ? 'rope_scaling.' : 'rope_parameters.';
  const r = dict
    ? readRopeDict(new Fields(dict, f.source, path), theta, f)
    : { theta, scaling: undefined, partial: undefined };
  return {
    ropeTheta: r.theta,
    ropeScaling: r.scaling,
    partialRotary: r.partial ?? topPartial ?? 1,
  };
}

/** The `rope_parameters` dict (transformers 5) of one RoPE. */
export function ropeParameters(theta: number, s: RopeScaling | undefined, partial?: number): Raw {
  const base: Raw = { rope_theta: theta, rope_type: s?.type ?? 'default' };
  if (partial !== undefined && partial !== 1) base.partial_rotary_factor = partial;
  if (s === undefined) return base;
  switch (s.type) {
    case 'linear':
    case 'dynamic':
      return { ...base, factor: s.factor };
    case 'llama3':
      return {
        ...base,
        factor: s.factor,
        low_freq_factor: s.lowFreqFactor,
        high_freq_factor: s.highFreqFactor,
        original_max_position_embeddings: s.originalMaxPositions,
      };
    case 'yarn': {
      const opt: Raw = {
        attention_factor: s.attentionFactor,
        beta_fast: s.betaFast,
        beta_slow: s.betaSlow,
        mscale: s.mscale,
        mscale_all_dim: s.mscaleAllDim,
        truncate: s.truncate,
      };
      for (const k of Object.keys(opt)) if (opt[k] === undefined) delete opt[k];
      return {
        ...base,
        factor: s.factor,
        original_max_position_embeddings: s.originalMaxPositions,
        ...opt,
      };
    }
  }
}
