import * as tf from '../tf.js';
import type { BackendAdapter } from './types.js';

/** Pure-JS backend: always present, slow (~1 GFLOP/s); the correctness reference. */
export const cpuBackend: BackendAdapter = {
  name: 'cpu',
  tfName: 'cpu',
  deviceKinds: ['cpu'],
  install: 'nothing: @tensorflow/tfjs-backend-cpu is a dependency of troupe',
  async probe() {
    return { available: true, reason: 'pure JavaScript, always available' };
  },
  async activate() {
    await tf.setBackend('cpu');
    await tf.ready();
    return 'pure JavaScript kernels';
  },
};
