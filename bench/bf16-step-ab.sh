#!/usr/bin/env bash
# Interleaved A/B of the small model's bf16 step (bench/profile-step.ts small bf16, 2 BLAS threads,
# SkylakeX): `rounds` runs each of the environment A (e.g. TROUPE_PROFILE_SPLIT_GRAD=1) and of the
# default, alternating, printing each run's trainer-step, fwd + bwd and forward lines.
#   tbench bash bench/bf16-step-ab.sh 'TROUPE_PROFILE_SPLIT_GRAD=1' [rounds]
set -u
a="$1"
rounds="${2:-3}"
for ((i = 1; i <= rounds; i++)); do
  for side in A B; do
    if [ "$side" = A ]; then envs="$a"; else envs=""; fi
    echo "== round $i $side (${envs:-default}) load $(cut -d' ' -f1 /proc/loadavg)"
    env $envs OPENBLAS_CORETYPE=SkylakeX TROUPE_BLAS_THREADS=2 TROUPE_PROFILE_ROWS=0 \
      npx tsx bench/profile-step.ts small bf16 | grep -E "trainer step|fwd \+ bwd:|forward:"
  done
done
