import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/*
 * The layer order of src/ (docs/layers.md), enforced from the import graph: a module imports only
 * from its own layer and the layers before it in LAYERS, and only src/actors imports comlink.
 * A file belongs to the layer of the longest path in LAYERS that names it or a folder above it.
 */

/** Lowest first. Each entry: its name, the paths it holds (a trailing / is a folder). */
const LAYERS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['shared', ['errors.ts', 'util/']],
  ['kernels', ['kernels/']],
  // Pure losses are tensor maths over kernels only, so the config schemas can name their keys.
  ['losses', ['algorithms/losses/']],
  ['data', ['data/']],
  // Run directories (files, checkpoints, metrics, progress, reports): a model path can name one.
  ['train', ['train/']],
  // The config schemas and the zod option check every component shares.
  ['config', ['config/']],
  ['policy', ['policy/']],
  ['rollout', ['rollout/']],
  ['actors', ['actors/']],
  // Reward sources run a user's module in the actors' task pool.
  ['reward', ['reward/']],
  // The algorithms' config schemas: their enums are the keys of registries in the layers below
  // (advantage estimators in rollout, schedules in policy, KL estimators in kernels).
  ['config schemas', ['config/components.ts', 'config/schema.ts', 'config/rl-schema.ts']],
  ['algorithms', ['algorithms/']],
  // Reading a run config goes through the ALGORITHMS registry.
  ['config loading', ['config/load.ts', 'config/defaults.ts']],
  ['cai', ['cai/']],
  ['scaling', ['scaling/']],
  // A command is the CLI's, wherever its file is.
  ['cli', ['cli/', 'scaling/cli.ts']],
  ['api', ['index.ts']],
];

/** Only files under these folders may import these packages. */
const PACKAGE_HOMES: Readonly<Record<string, string>> = { comlink: 'actors/' };

/** The index in LAYERS of the layer a src-relative path belongs to; -1 when none names it. */
function layerOf(path: string): number {
  let best = -1;
  let longest = -1;
  LAYERS.forEach(([, paths], i) => {
    for (const p of paths) {
      const hit = p.endsWith('/') ? path.startsWith(p) : path === p;
      if (hit && p.length > longest) {
        best = i;
        longest = p.length;
      }
    }
  });
  return best;
}

/**
 * Every module specifier a TypeScript file imports or re-exports: `import … from`, `import type`,
 * `export … from` (each over several lines too), a bare `import '…'` and `import('…')`. Statements
 * start a line, so an import quoted in a comment (` * import …`, `// import …`) does not count.
 */
function importsOf(text: string): string[] {
  const patterns = [
    /^[ \t]*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^[ \t]*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  return patterns.flatMap((re) => [...text.matchAll(re)].map((m) => m[1]));
}

/** What is wrong with a tree of src files (path relative to src → text), one line each. */
function layerProblems(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    const mine = layerOf(path);
    if (mine < 0) {
      out.push(`src/${path}: no layer in LAYERS holds it (test/layers.test.ts, docs/layers.md)`);
      continue;
    }
    for (const spec of importsOf(text)) {
      if (!spec.startsWith('.')) {
        const pkg = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : spec.split('/')[0];
        const home = PACKAGE_HOMES[pkg];
        if (home !== undefined && !path.startsWith(home)) {
          out.push(`src/${path} imports '${spec}': only src/${home} may import ${pkg}`);
        }
        continue;
      }
      const target = normalize(join(dirname(path), spec)).replace(/\.(m?)js$/, '.$1ts');
      const theirs = layerOf(target);
      if (theirs > mine) {
        out.push(
          `src/${path} imports '${spec}': layer ${LAYERS[mine][0]} imports ${LAYERS[theirs][0]}, a layer above it`,
        );
      }
    }
  }
  return out;
}

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');

function sourceTree(): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.m?ts$/.test(e.name)) files.set(relative(SRC, p), readFileSync(p, 'utf8'));
    }
  };
  walk(SRC);
  return files;
}

describe('layers', () => {
  it('reads every form of import, and none quoted in a comment', () => {
    const text = [
      "import { a, type B } from '../kernels/tf.js';",
      'import type {',
      '  C,',
      '  D,',
      "} from './c.js';",
      "export { e } from '../e.js';",
      'export * as f from "../f.js";',
      "import '../side-effect.js';",
      "const g = await import('../lazy.js');",
      " * import { h } from '../in-a-doc-comment.js';",
      "// import { i } from '../in-a-line-comment.js';",
      "const s = 'import from here';",
    ].join('\n');
    expect(importsOf(text).sort()).toEqual(
      [
        '../kernels/tf.js',
        './c.js',
        '../e.js',
        '../f.js',
        '../side-effect.js',
        '../lazy.js',
      ].sort(),
    );
  });

  it('names the file and the import that climbs, and a file no layer holds', () => {
    const tree = new Map([
      [
        'policy/model.ts',
        "import { x } from '../kernels/tf.js';\nimport { y } from '../rollout/a.js';",
      ],
      ['rollout/a.ts', "import type { R } from '../reward/types.js';"],
      ['config/load.ts', "import { A } from '../algorithms/registry.js';"],
      ['config/actors.ts', "import { A } from '../algorithms/registry.js';"],
      // The config schemas sit above rollout (its estimator registry), still below algorithms.
      ['config/rl-schema.ts', "import { E } from '../rollout/advantages.js';"],
      ['config/schema.ts', "import { A } from '../algorithms/registry.js';"],
      ['algorithms/roles/p.ts', "import * as Comlink from 'comlink';"],
      ['actors/host.ts', "import * as Comlink from 'comlink';"],
      ['nowhere/x.ts', ''],
    ]);
    expect(layerProblems(tree)).toEqual([
      "src/policy/model.ts imports '../rollout/a.js': layer policy imports rollout, a layer above it",
      "src/rollout/a.ts imports '../reward/types.js': layer rollout imports reward, a layer above it",
      "src/config/actors.ts imports '../algorithms/registry.js': layer config imports algorithms, a layer above it",
      "src/config/schema.ts imports '../algorithms/registry.js': layer config schemas imports algorithms, a layer above it",
      "src/algorithms/roles/p.ts imports 'comlink': only src/actors/ may import comlink",
      'src/nowhere/x.ts: no layer in LAYERS holds it (test/layers.test.ts, docs/layers.md)',
    ]);
  });

  it('src/ follows the layer order, and only src/actors imports comlink', () => {
    const tree = sourceTree();
    expect(tree.size).toBeGreaterThan(100);
    expect(layerProblems(tree)).toEqual([]);
  });
});
