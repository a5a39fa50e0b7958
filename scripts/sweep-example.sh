#!/bin/sh
# The shipped scaling-law example (README "Scaling laws"): 4 IsoFLOP budgets × 6 GPT-2 sizes on
# Moby-Dick, about 25 min on 2 cores; then the fits and report, copied into docs/scaling/moby-dick/.
# Run again to continue an interrupted sweep (finished jobs are skipped). Extra arguments go to
# `troupe sweep` (--fit-only, --fit.bootstrap 500, ...).
set -eu
cd "$(dirname "$0")/.."
npx tsx src/cli/main.ts sweep --config examples/sweep/moby-dick.yaml "$@"
out=runs/sweep-moby-dick
dest=docs/scaling/moby-dick
mkdir -p "$dest/svg"
cp "$out/results.csv" "$out/results.json" "$out/fits.json" "$out/report.html" "$dest/"
cp "$out"/svg/*.svg "$dest/svg/"
echo "copied the table, fits, report and charts to $dest/"
