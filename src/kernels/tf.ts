/**
 * The one place Troupe imports TensorFlow.js from. `@tensorflow/tfjs-core` registers no
 * gradients by itself (its ESM gradient files cannot be imported by Node), so the umbrella
 * package is loaded for its side effect: every op's gradient, registered once per thread.
 */
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

export * from '@tensorflow/tfjs-core';
