/** comlink ships this adapter's types only for its UMD build; the ESM file is the same function. */
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { MessagePort, Worker } from 'node:worker_threads';
  import type { Endpoint } from 'comlink';
  export default function nodeEndpoint(nep: MessagePort | Worker): Endpoint;
}
