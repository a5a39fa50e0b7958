import { workerData } from 'node:worker_threads';
import { type BootData, boot } from './host.js';

await boot(workerData as BootData);
