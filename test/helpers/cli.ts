import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** src/cli/main.ts: the CLI from its TypeScript sources. */
export const CLI_SOURCES = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/**
 * The arguments before a CLI test's own: `node <these> pretrain --config …`. The compiled copy
 * of this checkout's sources when the run has one (TROUPE_SOURCES_BUILD, scripts/sources-build.ts:
 * the JavaScript the package ships, and its actor threads start without a TypeScript loader),
 * else the sources through tsx.
 */
export function cliArgs(): string[] {
  const build = process.env.TROUPE_SOURCES_BUILD;
  return build ? [join(build, 'cli', 'main.js')] : ['--import', 'tsx', CLI_SOURCES];
}
