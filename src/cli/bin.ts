#!/usr/bin/env node
/**
 * The `troupe` executable: runs main.ts's command, in a child process when glibc's huge-page
 * tunable must be set before the process starts (huge-pages.ts says why). The child inherits
 * stdio; its exit status (or 128 + its signal's number) is this process's. Ctrl-C reaches both
 * through the terminal's process group, so SIGINT is not forwarded (a second one would kill the
 * child's checkpointing stop); SIGTERM and SIGHUP, sent to one process, are.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hugePagesEnv, onGlibc } from './huge-pages.js';

const env = hugePagesEnv(process.env, onGlibc());
if (env) {
  // main.js beside bin.js; main.ts beside bin.ts when run from the sources (execArgv: tsx)
  const self = fileURLToPath(import.meta.url);
  const main = fileURLToPath(new URL(`./main${extname(self)}`, import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, main, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env,
  });
  process.on('SIGINT', () => {});
  for (const s of ['SIGTERM', 'SIGHUP'] as const) process.on(s, () => child.kill(s));
  child.on('error', (e) => {
    process.stderr.write(`troupe: could not start ${process.execPath}: ${e.message}\n`);
    process.exitCode = 1;
  });
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
  });
} else {
  const { main } = await import('./main.js');
  process.exitCode = await main(process.argv.slice(2));
}
