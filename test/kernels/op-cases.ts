import { leftPad } from '../../src/data/batching/collate.js';
import { scaledSoftmax } from '../../src/kernels/custom/native-rows.js';
import { logProbsFromLogits } from '../../src/kernels/numerics/index.js';
import * as tf from '../../src/kernels/tf.js';
import { CausalLM } from '../../src/policy/model/causal-lm.js';
import { KVCache } from '../../src/policy/model/kv-cache.js';
import {
  applyRope,
  geluTanh,
  layerNorm,
  linear,
  rmsNorm,
  silu,
} from '../../src/policy/model/layers.js';
import { randomState, TINY } from '../policy/fixtures.js';

/** How a case's input is drawn (seeded): real numbers, positive reals, ints in [0, max), or bools. */
export type InputKind =
  | { kind: 'normal'; scale?: number }
  | { kind: 'positive' }
  | { kind: 'int'; max: number }
  | { kind: 'bool' };

export interface InputSpec {
  readonly shape: number[];
  readonly draw?: InputKind;
}

/**
 * One tfjs kernel exercised on every backend: forward against `cpu`, and (when `grad`) the
 * gradient of Σ w ⊙ fn(x) with respect to every float input.
 */
export interface OpCase {
  readonly kernel: string;
  readonly label: string;
  readonly inputs: readonly InputSpec[];
  readonly fn: (...xs: tf.Tensor[]) => tf.Tensor;
  /** False for ops whose output is integer/bool or that models never differentiate through. */
  readonly grad: boolean;
}

const f = (...shape: number[]): InputSpec => ({ shape });
const pos = (...shape: number[]): InputSpec => ({ shape, draw: { kind: 'positive' } });
const int = (max: number, ...shape: number[]): InputSpec => ({ shape, draw: { kind: 'int', max } });
const bool = (...shape: number[]): InputSpec => ({ shape, draw: { kind: 'bool' } });

function unary(kernel: string, fn: (x: tf.Tensor) => tf.Tensor, input = f(3, 5)): OpCase {
  return { kernel, label: kernel, inputs: [input], fn: (x) => fn(x), grad: true };
}
function binary(kernel: string, fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, b = f(5)): OpCase {
  // Broadcast [3,5] with [5]: the gradient must reduce over the broadcast axis.
  return {
    kernel,
    label: `${kernel} broadcast`,
    inputs: [f(3, 5), b],
    fn: (x, y) => fn(x, y),
    grad: true,
  };
}
function noGrad(
  kernel: string,
  inputs: InputSpec[],
  fn: (...xs: tf.Tensor[]) => tf.Tensor,
): OpCase {
  return { kernel, label: kernel, inputs, fn, grad: false };
}

/**
 * Every kernel the project's models, losses and numerics dispatch (and the ones the transformer
 * models are built from). The coverage test fails when a workload dispatches a kernel that has
 * no case here: add one, run it on every backend, and fix what breaks.
 */
export const OP_CASES: readonly OpCase[] = [
  // Element-wise, unary.
  unary('Abs', tf.abs),
  unary('Step', (x) => tf.step(x)), // the gradient of Abs
  unary('Neg', tf.neg),
  unary('Exp', tf.exp),
  unary('Expm1', tf.expm1),
  unary('Log', tf.log, pos(3, 5)),
  unary('Log1p', tf.log1p, pos(3, 5)),
  unary('Sqrt', tf.sqrt, pos(3, 5)),
  unary('Rsqrt', tf.rsqrt, pos(3, 5)),
  unary('Reciprocal', tf.reciprocal, pos(3, 5)),
  unary('Square', tf.square),
  unary('Tanh', tf.tanh),
  unary('Sigmoid', tf.sigmoid),
  unary('Softplus', tf.softplus),
  unary('Erf', tf.erf),
  unary('Sin', tf.sin),
  unary('Cos', tf.cos),
  unary('Relu', tf.relu),
  unary('Elu', tf.elu),
  unary('Identity', (x) => tf.clone(x)),
  unary('ClipByValue', (x) => tf.clipByValue(x, -0.5, 0.7)),
  unary('Softmax', (x) => tf.softmax(x)),
  {
    kernel: 'Softmax',
    label: 'Softmax 5-D (grouped attention scores)',
    inputs: [f(2, 1, 2, 3, 4)],
    fn: (x) => tf.softmax(x),
    grad: true,
  },
  unary('Cast', (x) => tf.cast(tf.cast(x, 'int32'), 'float32')),
  // Element-wise, binary (with broadcasting).
  binary('Add', tf.add),
  binary('Sub', tf.sub),
  binary('Multiply', tf.mul),
  binary('RealDiv', tf.div, pos(5)),
  binary('Maximum', tf.maximum),
  binary('Minimum', tf.minimum),
  binary('SquaredDifference', tf.squaredDifference),
  {
    kernel: 'Pow',
    label: 'Pow',
    inputs: [pos(3, 5), f(5)],
    fn: (a, b) => tf.pow(a, b),
    grad: true,
  },
  {
    kernel: 'AddN',
    label: 'AddN',
    inputs: [f(3, 5), f(3, 5), f(3, 5)],
    fn: (a, b, c) => tf.addN([a, b, c]),
    grad: true,
  },
  {
    kernel: 'Select',
    label: 'where',
    inputs: [bool(3, 5), f(3, 5), f(3, 5)],
    fn: (c, a, b) => tf.where(c, a, b),
    grad: true,
  },
  // Reductions.
  unary('Sum', (x) => tf.sum(x, 1)),
  unary('Mean', (x) => tf.mean(x, 0)),
  unary('Max', (x) => tf.max(x, 1)),
  unary('Min', (x) => tf.min(x, 1)),
  unary('Prod', (x) => tf.prod(x, 1)),
  unary('Cumsum', (x) => tf.cumsum(x, 1)),
  // Shape and data movement.
  unary('Reshape', (x) => tf.reshape(x, [5, 3])),
  unary('Transpose', (x) => tf.transpose(x, [1, 0]), f(3, 5)),
  {
    kernel: 'Transpose',
    label: 'Transpose 4-D [B,T,H,D]→[B,H,T,D]',
    inputs: [f(2, 3, 2, 4)],
    fn: (x) => tf.transpose(x, [0, 2, 1, 3]),
    grad: true,
  },
  {
    kernel: 'Transpose',
    label: 'Transpose 5-D [B,T,KV,rep,hd]→[B,KV,rep,T,hd]',
    inputs: [f(2, 3, 2, 2, 4)],
    fn: (x) => tf.transpose(x, [0, 2, 3, 1, 4]),
    grad: true,
  },
  {
    kernel: 'SplitV',
    label: 'split 4-D on the last axis (RoPE halves)',
    inputs: [f(2, 3, 2, 4)],
    fn: (x) => tf.split(x, [2, 2], 3)[1],
    grad: true,
  },
  {
    kernel: 'Concat',
    label: 'Concat',
    inputs: [f(3, 2), f(3, 4)],
    fn: (a, b) => tf.concat([a, b], 1),
    grad: true,
  },
  unary('Slice', (x) => tf.slice(x, [1, 1], [2, 3])),
  {
    kernel: 'Pack',
    label: 'stack',
    inputs: [f(3, 2), f(3, 2)],
    fn: (a, b) => tf.stack([a, b], 1),
    grad: true,
  },
  unary('Unpack', (x) => tf.unstack(x, 1)[2]),
  unary('SplitV', (x) => tf.split(x, [2, 3], 1)[1]),
  unary('Tile', (x) => tf.tile(x, [2, 1])),
  unary('PadV2', (x) =>
    tf.pad(x, [
      [0, 0],
      [2, 0],
    ]),
  ),
  unary('BroadcastTo', (x) => tf.broadcastTo(x, [4, 3, 5])),
  unary('Reverse', (x) => tf.reverse(x, 1)),
  {
    kernel: 'GatherV2',
    label: 'embedding gather [B,T] ids from [V,d]',
    inputs: [f(9, 4), int(9, 2, 3)],
    fn: (table, ids) => tf.gather(table, ids),
    grad: true,
  },
  {
    kernel: 'GatherV2',
    label: 'gather along axis 1 with batchDims 1 (pick a label per row)',
    inputs: [f(4, 7), int(7, 4, 1)],
    fn: (x, ids) => tf.gather(x, ids, 1, 1),
    grad: true,
  },
  {
    kernel: 'UnsortedSegmentSum',
    label: 'UnsortedSegmentSum',
    inputs: [f(6, 3), int(4, 6)],
    fn: (x, ids) => tf.unsortedSegmentSum(x, ids as tf.Tensor1D, 4),
    grad: true,
  },
  // Matrix products: every transpose and batch form a model or its gradient produces.
  ...(
    [
      [[7, 5], [5, 3], false, false],
      [[7, 5], [3, 5], false, true],
      [[5, 7], [5, 3], true, false],
      [[2, 7, 5], [2, 3, 5], false, true],
      [[2, 7, 5], [5, 3], false, false],
      [[2, 3, 7, 5], [2, 3, 5, 4], false, false],
    ] as Array<[number[], number[], boolean, boolean]>
  ).map(
    ([sa, sb, ta, tb]): OpCase => ({
      kernel: 'BatchMatMul',
      label: `matMul [${sa}]·[${sb}] tA=${ta} tB=${tb}`,
      inputs: [f(...sa), f(...sb)],
      fn: (a, b) => tf.matMul(a, b, ta, tb),
      grad: true,
    }),
  ),
  {
    kernel: '_FusedMatMul',
    label: 'fused matMul + bias + gelu-free relu',
    inputs: [f(4, 5), f(5, 3), f(3)],
    fn: (a, b, bias) => tf.fused.matMul({ a, b, bias, activation: 'relu' }),
    grad: true,
  },
  // Integer / boolean results: forward only.
  noGrad('OneHot', [int(6, 2, 3)], (ids) => tf.oneHot(ids, 6)),
  noGrad('ArgMax', [f(3, 5)], (x) => tf.argMax(x, 1)),
  noGrad('Greater', [f(3, 5), f(5)], (a, b) => tf.greater(a, b)),
  noGrad('GreaterEqual', [f(3, 5), f(5)], (a, b) => tf.greaterEqual(a, b)),
  noGrad('Less', [f(3, 5), f(5)], (a, b) => tf.less(a, b)),
  noGrad('LessEqual', [f(3, 5), f(5)], (a, b) => tf.lessEqual(a, b)),
  noGrad('Equal', [int(3, 3, 5), int(3, 5)], (a, b) => tf.equal(a, b)),
  noGrad('NotEqual', [int(3, 3, 5), int(3, 5)], (a, b) => tf.notEqual(a, b)),
  noGrad('LogicalAnd', [bool(3, 5), bool(3, 5)], (a, b) => tf.logicalAnd(a, b)),
  noGrad('LogicalOr', [bool(3, 5), bool(3, 5)], (a, b) => tf.logicalOr(a, b)),
  noGrad('LogicalNot', [bool(3, 5)], (a) => tf.logicalNot(a)),
  noGrad('IsNan', [f(3, 5)], (x) => tf.isNaN(x)),
  noGrad('Range', [], () => tf.range(0, 7, 1, 'int32')),
  noGrad('Fill', [], () => tf.fill([2, 3], 1.5)),
  noGrad('ZerosLike', [f(3, 5)], (x) => tf.zerosLike(x)),
  noGrad('OnesLike', [f(3, 5)], (x) => tf.onesLike(x)),
  noGrad('FloorDiv', [int(20, 3, 5), { shape: [5], draw: { kind: 'int', max: 1 } }], (a, b) =>
    tf.floorDiv(a, tf.add(b, 3)),
  ),
  noGrad('Floor', [f(3, 5)], (x) => tf.floor(x)),
  noGrad('TopK', [f(3, 5)], (x) => tf.topk(x, 2).values),
  // Troupe's fused native kernels (wasm and cpu with the addon; the composite ops elsewhere, so
  // webgpu checks them against cpu). The …Grad kernels run in each case's backward.
  ...(['TroupeLayerNorm', 'TroupeLayerNormGrad'] as const).map((kernel) => ({
    kernel,
    label: `${kernel} (layerNorm over the last axis)`,
    inputs: [f(2, 3, 7), f(7), f(7)],
    fn: (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => layerNorm(x, g, b, 1e-5),
    grad: true,
  })),
  ...(['TroupeRmsNorm', 'TroupeRmsNormGrad'] as const).map((kernel) => ({
    kernel,
    label: `${kernel} (rmsNorm over the last axis)`,
    inputs: [f(2, 3, 7), f(7)],
    fn: (x: tf.Tensor, g: tf.Tensor) => rmsNorm(x, g, 1e-6),
    grad: true,
  })),
  ...(['TroupeActivation', 'TroupeActivationGrad'] as const).flatMap((kernel) => [
    { kernel, label: `${kernel} (GELU tanh)`, inputs: [f(3, 5)], fn: geluTanh, grad: true },
    { kernel, label: `${kernel} (SiLU)`, inputs: [f(3, 5)], fn: silu, grad: true },
  ]),
  {
    kernel: 'TroupeRope',
    label: 'TroupeRope (applyRope: rotate-half, partial rotary)',
    inputs: [f(2, 3, 4, 10), f(2, 3, 1, 8), f(2, 3, 1, 8)],
    fn: (x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor) => applyRope(x, cos, sin),
    grad: true,
  },
  ...(['TroupeScaledSoftmax', 'TroupeScaledSoftmaxGrad'] as const).map((kernel) => ({
    kernel,
    label: `${kernel} (softmax(x/√d + bias), bias over the heads)`,
    inputs: [f(2, 3, 4, 5), f(2, 1, 1, 4, 5)],
    fn: (x: tf.Tensor, bias: tf.Tensor) => scaledSoftmax(x, 0.5, bias, 2),
    grad: true,
  })),
  ...(['TroupeLogSoftmaxPick', 'TroupeLogSoftmaxPickGrad'] as const).map((kernel) => ({
    kernel,
    label: `${kernel} (logProbsFromLogits)`,
    inputs: [f(2, 3, 7), int(7, 2, 3)],
    fn: (z: tf.Tensor, y: tf.Tensor) => logProbsFromLogits(z, y),
    grad: true,
  })),
  ...(['gpt2', 'llama'] as const).map((family) => ({
    ...noGrad('TroupeDecodeBlock', [], () => cachedLogits(family)),
    label: `TroupeDecodeBlock (cached ${family} forward)`,
  })),
  {
    kernel: 'TroupeLinear',
    label: 'TroupeLinear (x·W + b)',
    inputs: [f(2, 3, 5), f(5, 4), f(4)],
    fn: (x, w, b) => linear(x, w, b),
    grad: true,
  },
];

/**
 * A cached generation's logits (prefill of 4 and 2 left-padded, then one token each): the native
 * decoder block on wasm and cpu with the addon, the tensor cache elsewhere.  → [2, 5, V]
 */
function cachedLogits(family: 'gpt2' | 'llama'): tf.Tensor {
  const c = TINY[family];
  const model = CausalLM.fromState(c, randomState(c, 4));
  const cache = new KVCache(2);
  try {
    const first = model.logits(
      model.forward(
        leftPad(
          [
            [3, 1, 4, 1],
            [5, 9],
          ],
          0,
        ),
        { cache },
      ),
    );
    const next = model.logits(model.forward(leftPad([[2], [6]], 0), { cache }));
    return tf.concat([first, next], 1);
  } finally {
    cache.dispose();
    model.dispose();
  }
}
