/**
 * Float64 plain-loop references for the preference and reward-model losses: one obvious loop
 * per formula, written from the papers / TRL, no tensors. Each returns the loss and the
 * metrics the tensor version reports.
 */

export type Values = ArrayLike<number>;
export interface RefOut {
  loss: number;
  metrics: Record<string, number>;
}

/** log σ(z), stable on both sides. */
export function logSigmoid(z: number): number {
  return z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z));
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** log(1 − eˣ), x < 0 (Mächler 2012). */
export function log1mexp(x: number): number {
  return x > -Math.LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x));
}

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perToken = (s: number, n: number) => (n === 0 ? 0 : s / n);

function paired(cr: number[], rr: number[], cl: number[], rl: number[]): Record<string, number> {
  return {
    'rewards/chosen': avg(cr),
    'rewards/rejected': avg(rr),
    'rewards/accuracies': avg(cr.map((c, i) => (c > rr[i] ? 1 : 0))),
    'rewards/margins': avg(cr.map((c, i) => c - rr[i])),
    'logps/chosen': avg(cl),
    'logps/rejected': avg(rl),
  };
}

/** Paired inputs as plain arrays (sums over response tokens, like the tensor version). */
export interface RefPaired {
  pc: Values;
  pr: Values;
  rc?: Values;
  rr?: Values;
  nc?: Values;
  nr?: Values;
  nll?: number;
}

/** DPO eq. 7 with cDPO smoothing ε. */
export function refDpo(x: RefPaired, beta: number, eps = 0): RefOut {
  const B = x.pc.length;
  const losses: number[] = [];
  const cr: number[] = [];
  const rr: number[] = [];
  for (let b = 0; b < B; b++) {
    const c = x.pc[b] - x.rc![b];
    const r = x.pr[b] - x.rr![b];
    const h = c - r;
    losses.push(-(1 - eps) * logSigmoid(beta * h) - eps * logSigmoid(-beta * h));
    cr.push(beta * c);
    rr.push(beta * r);
  }
  return { loss: avg(losses), metrics: paired(cr, rr, Array.from(x.pc), Array.from(x.pr)) };
}

/** IPO eq. 17 on per-token means of policy and reference. */
export function refIpo(x: RefPaired, beta: number): RefOut {
  const B = x.pc.length;
  const losses: number[] = [];
  const cr: number[] = [];
  const rr: number[] = [];
  const cl: number[] = [];
  const rl: number[] = [];
  for (let b = 0; b < B; b++) {
    const pc = perToken(x.pc[b], x.nc![b]);
    const pr = perToken(x.pr[b], x.nr![b]);
    const c = pc - perToken(x.rc![b], x.nc![b]);
    const r = pr - perToken(x.rr![b], x.nr![b]);
    losses.push((c - r - 1 / (2 * beta)) ** 2);
    cr.push(beta * c);
    rr.push(beta * r);
    cl.push(pc);
    rl.push(pr);
  }
  return { loss: avg(losses), metrics: paired(cr, rr, cl, rl) };
}

/** −Σ log π(y_c) / Σ |y_c|, or the given NLL. */
function nllOf(x: RefPaired): number {
  if (x.nll !== undefined) return x.nll;
  let s = 0;
  let n = 0;
  for (let b = 0; b < x.pc.length; b++) {
    s += x.pc[b];
    n += x.nc![b];
  }
  return n === 0 ? 0 : -s / n;
}

/** SimPO eq. 6 with smoothing ε and CPO NLL weight α. */
export function refSimpo(x: RefPaired, beta: number, gamma = 0.5, eps = 0, alpha = 0): RefOut {
  const B = x.pc.length;
  const losses: number[] = [];
  const cl: number[] = [];
  const rl: number[] = [];
  for (let b = 0; b < B; b++) {
    const pc = perToken(x.pc[b], x.nc![b]);
    const pr = perToken(x.pr[b], x.nr![b]);
    const z = beta * (pc - pr) - gamma;
    losses.push(-(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z));
    cl.push(pc);
    rl.push(pr);
  }
  const metrics = paired(
    cl.map((v) => beta * v),
    rl.map((v) => beta * v),
    cl,
    rl,
  );
  let loss = avg(losses);
  if (alpha > 0) {
    const nll = nllOf(x);
    loss += alpha * nll;
    metrics['loss/nll'] = nll;
  }
  return { loss, metrics };
}

/** ORPO eqs. 4–7: NLL − λ·mean log σ(log odds_c − log odds_r), means clamped at −1e-7. */
export function refOrpo(x: RefPaired, lambda: number): RefOut {
  const B = x.pc.length;
  const ratios: number[] = [];
  const odds: number[] = [];
  const cl: number[] = [];
  const rl: number[] = [];
  const logOdds = (a: number) => {
    const v = Math.min(a, -1e-7);
    return v - log1mexp(v);
  };
  for (let b = 0; b < B; b++) {
    const pc = perToken(x.pc[b], x.nc![b]);
    const pr = perToken(x.pr[b], x.nr![b]);
    const r = logOdds(pc) - logOdds(pr);
    ratios.push(logSigmoid(r));
    odds.push(r);
    cl.push(pc);
    rl.push(pr);
  }
  const nll = nllOf(x);
  const metrics = paired(
    cl.map((v) => lambda * v),
    rl.map((v) => lambda * v),
    cl,
    rl,
  );
  metrics['loss/nll'] = nll;
  metrics['orpo/log_odds_ratio'] = avg(ratios);
  metrics['orpo/log_odds_chosen'] = avg(odds);
  return { loss: nll - lambda * avg(ratios), metrics };
}

export interface RefUnpaired {
  policy: Values;
  ref: Values;
  desirable: Values;
  policyKl?: Values;
  refKl?: Values;
  kl?: number;
}

/** KTO eq. 7 with TRL's batch KL z0 = max(0, mean(π_KL − ref_KL)). */
export function refKto(x: RefUnpaired, beta: number, wD = 1, wU = 1): RefOut {
  let z0: number;
  if (x.kl !== undefined) {
    z0 = x.kl;
  } else {
    let s = 0;
    for (let j = 0; j < x.policyKl!.length; j++) s += x.policyKl![j] - x.refKl![j];
    z0 = s / x.policyKl!.length;
  }
  z0 = Math.max(0, z0);
  const N = x.policy.length;
  let total = 0;
  const good = { reward: [] as number[], logp: [] as number[] };
  const bad = { reward: [] as number[], logp: [] as number[] };
  for (let i = 0; i < N; i++) {
    const rho = x.policy[i] - x.ref[i];
    const side = x.desirable[i] ? good : bad;
    total += x.desirable[i]
      ? wD * (1 - sigmoid(beta * (rho - z0)))
      : wU * (1 - sigmoid(beta * (z0 - rho)));
    side.reward.push(beta * rho);
    side.logp.push(x.policy[i]);
  }
  const meanOr0 = (xs: number[]) => (xs.length === 0 ? 0 : avg(xs));
  return {
    loss: total / N,
    metrics: {
      'kto/kl': z0,
      'rewards/chosen': meanOr0(good.reward),
      'rewards/rejected': meanOr0(bad.reward),
      'logps/chosen': meanOr0(good.logp),
      'logps/rejected': meanOr0(bad.logp),
      'count/chosen': good.reward.length,
      'count/rejected': bad.reward.length,
    },
  };
}

/** Bradley–Terry −log σ(r_c − r_r − m), plus c·mean((r_c + r_r)²). */
export function refBradleyTerry(chosen: Values, rejected: Values, margin?: Values, c?: number) {
  const B = chosen.length;
  const losses: number[] = [];
  const centers: number[] = [];
  const acc: number[] = [];
  const diffs: number[] = [];
  for (let b = 0; b < B; b++) {
    const d = chosen[b] - rejected[b];
    losses.push(-logSigmoid(d - (margin ? margin[b] : 0)));
    centers.push((chosen[b] + rejected[b]) ** 2);
    acc.push(chosen[b] > rejected[b] ? 1 : 0);
    diffs.push(d);
  }
  const metrics: Record<string, number> = {
    'rm/accuracy': avg(acc),
    'rm/chosen_score': avg(Array.from(chosen)),
    'rm/rejected_score': avg(Array.from(rejected)),
    'rm/margin': avg(diffs),
  };
  let loss = avg(losses);
  if (c !== undefined) {
    metrics['rm/center_loss'] = c * avg(centers);
    loss += metrics['rm/center_loss'];
  }
  return { loss, metrics };
}

/** Σ / mean / count of masked log-softmax picks: logits [B,T,V], labels and mask [B,T]. */
export function refSequenceLogps(
  logits: Values,
  labels: Values,
  mask: Values,
  [B, T, V]: [number, number, number],
) {
  const sum = new Float64Array(B);
  const count = new Float64Array(B);
  const mean = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * V;
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[o + v]);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[o + v] - max);
      const lp = logits[o + labels[b * T + t]] - max - Math.log(z);
      sum[b] += mask[b * T + t] * lp;
      count[b] += mask[b * T + t];
    }
    mean[b] = count[b] === 0 ? 0 : sum[b] / count[b];
  }
  return { sum, mean, count };
}
