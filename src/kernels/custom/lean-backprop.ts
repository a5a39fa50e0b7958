import * as tf from '../tf.js';

/**
 * tfjs' `engine.gradients` (what `tf.grads`, `tf.variableGrads` and every trainer's backward
 * run) with the memory PyTorch's autograd has: each tape node's saved tensors are freed once its
 * gradient ran, and each intermediate gradient once the node that produced its tensor consumed
 * it. tfjs 4.22 keeps both until the whole backward pass ends (its `backpropagateGradients` runs
 * in one `tidy`, and the saved tensors are disposed after it), so the backward's peak held every
 * activation the forward saved plus a gradient for every intermediate tensor. Measured on a
 * 4-layer Llama-shaped model (d 256, I 688, 64–512 tokens; wasm heap bytes, each buffer once):
 * a training step's peak above the weights (activations and gradients) fell from 83–118 to
 * 35–51 floats per token·layer·d (docs/memory.md).
 *
 * The arithmetic is tfjs' own, in the same order (the same tape, the same gradient functions
 * and accumulation), so gradients are bit-identical; only when tensors are disposed changes.
 */

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineLike {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients: (
    f: () => tf.Tensor,
    xs: tf.Tensor[],
    dy?: tf.Tensor,
    allowNoGradients?: boolean,
  ) => { value: tf.Tensor; grads: tf.Tensor[] };
}

/** The nodes on a path from some x to y, their inputs pruned to those reached from x (tfjs' rule). */
export function nodesFromXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  return tape
    .filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id))
    .map((n) => ({
      ...n,
      inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))),
      outputs: n.outputs,
    }));
}

/**
 * Gradients by tensor id. A gradient function may hand the same tensor to several inputs (or
 * pass its dy through), so a tensor is disposed only when no id holds it any more.
 */
export class GradMap {
  private readonly byId = new Map<number, tf.Tensor>();
  private readonly holders = new Map<tf.Tensor, number>();

  get(id: number): tf.Tensor | undefined {
    return this.byId.get(id);
  }

  holds(t: tf.Tensor): boolean {
    return this.holders.has(t);
  }

  set(id: number, t: tf.Tensor): void {
    this.drop(id);
    this.byId.set(id, t);
    this.holders.set(t, (this.holders.get(t) ?? 0) + 1);
  }

  /** Forget id's gradient, disposing it if nothing else holds it. */
  drop(id: number): void {
    const t = this.byId.get(id);
    if (t === undefined) return;
    this.byId.delete(id);
    const n = (this.holders.get(t) ?? 1) - 1;
    if (n > 0) this.holders.set(t, n);
    else {
      this.holders.delete(t);
      t.dispose();
    }
  }
}

/**
 * Walk the tape backward accumulating gradients by tensor id (tfjs' `backpropagateGradients`),
 * freeing as it goes: after node i, its saved tensors (`freeSaved`) and its outputs' gradients,
 * except y's (the caller's) and those of the tensors in `keep` (the xs).
 */
export function backpropagateLean(
  grads: GradMap,
  tape: TapeNode[],
  tidy: (f: () => tf.Tensor) => tf.Tensor,
  opts: { keep: ReadonlySet<number>; yId: number; freeSaved: boolean },
): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    const dys = node.outputs.map((o) => grads.get(o.id) ?? null);
    if (!node.gradient) {
      throw new Error(
        `Cannot compute gradient: gradient function not found for ${node.kernelName}.`,
      );
    }
    const inputGradients = node.gradient(dys);
    for (const inputName in node.inputs) {
      if (!(inputName in inputGradients)) {
        throw new Error(
          `Cannot backprop through input ${inputName}. Available gradients found: ${Object.keys(inputGradients)}.`,
        );
      }
      const dx = tidy(() => inputGradients[inputName]());
      const x = node.inputs[inputName];
      if (dx.dtype !== 'float32') {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${inputName} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      }
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${inputName}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      }
      const current = grads.get(x.id);
      if (current === undefined) grads.set(x.id, dx);
      else {
        grads.set(x.id, tf.add(current, dx));
        if (!grads.holds(dx)) dx.dispose();
      }
    }
    if (opts.freeSaved) for (const t of node.saved ?? []) t.dispose();
    for (const o of node.outputs) {
      if (o.id !== opts.yId && !opts.keep.has(o.id)) grads.drop(o.id);
    }
  }
}

let stock: EngineLike['gradients'] | undefined;

/**
 * This thread's `engine.gradients`: the lean one (`on`, what the runtime installs) or tfjs' own
 * (tests and benchmarks compare the two). Returns whether it changed.
 */
export function setLeanBackprop(on: boolean): boolean {
  const engine = tf.engine() as unknown as EngineLike;
  stock ??= engine.gradients;
  const want = on ? leanGradients(engine) : stock;
  if (on === (engine.gradients !== stock)) return false;
  engine.gradients = want;
  return true;
}

function leanGradients(engine: EngineLike): EngineLike['gradients'] {
  return function gradients(f, xs, dy, allowNoGradients = false) {
    if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') {
      throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    }
    const y = engine.scopedRun(
      () => engine.startTape(),
      () => engine.endTape(),
      () => engine.tidy('forward', f),
    );
    if (!(y instanceof tf.Tensor))
      throw new Error('The result y returned by f() must be a tensor.');
    const tape = engine.state.activeTape ?? [];
    const filtered = nodesFromXToY(tape, xs, y);
    if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
      throw new Error(
        'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.',
      );
    }
    return engine.tidy('backward', () => {
      const grads = new GradMap();
      grads.set(y.id, dy ?? tf.ones(y.shape));
      const topLevel = engine.state.gradientDepth === 0;
      backpropagateLean(grads, filtered, (g) => engine.tidy(g), {
        keep: new Set(xs.map((x) => x.id)),
        yId: y.id,
        freeSaved: topLevel,
      });
      const out = xs.map((x) => grads.get(x.id)) as tf.Tensor[];
      if (topLevel) {
        for (const node of engine.state.activeTape ?? tape) {
          for (const t of node.saved ?? []) t.dispose();
        }
        engine.state.activeTape = null;
      }
      return { value: y, grads: out };
    }) as unknown as { value: tf.Tensor; grads: tf.Tensor[] };
  };
}
