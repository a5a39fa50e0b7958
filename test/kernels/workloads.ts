import * as tf from '../../src/kernels/tf.js';

/**
 * Workloads whose kernels the coverage test checks: each runs a piece of the project forward and
 * backward on small inputs. New models and losses add a workload here.
 */
export interface Workload {
  readonly name: string;
  readonly run: () => void;
}

export const WORKLOADS: readonly Workload[] = [
  {
    name: 'placeholder',
    run: () => {
      tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)));
    },
  },
];
