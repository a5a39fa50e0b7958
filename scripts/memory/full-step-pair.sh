#!/usr/bin/env bash
# One full fine-tune step of DIR (1 x 256 tokens, AdamW, gradient checkpointing), Troupe (cpu
# backend, 1 BLAS thread) then PyTorch 2.13 (1 thread), each in a process of its own, as the
# methods suite runs its rows (bench/suites/memory-methods.ts), without writing its results file.
# OPENBLAS_CORETYPE SkylakeX on both sides unless set. Run it under tbench (exclusive).
#
#   scripts/memory/full-step-pair.sh DIR [fp32|bf16] [reps] [troupe|torch|both]
set -euo pipefail
dir=${1:?usage: full-step-pair.sh DIR [fp32|bf16] [reps] [troupe|torch|both]}
precision=${2:-bf16}
reps=${3:-1}
sides=${4:-both}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
python=${TROUPE_TORCH_PYTHON:-/tmp/troupe-anchors/bin/python}
cd "$(dirname "$0")/../.."
if [[ $sides != torch ]]; then
  flags=(--checkpoint --reps "$reps")
  [[ $precision == bf16 ]] && flags+=(--precision bf16)
  # the environment the troupe command runs in (src/cli/huge-pages.ts); PyTorch keeps the plain one
  GLIBC_TUNABLES=${GLIBC_TUNABLES-glibc.malloc.hugetlb=1} node --import tsx bench/suites/memory-child.ts "$dir" full cpu 1 256 "${flags[@]}" |
    sed -n 's/^RESULT //p' | node -e "const r=JSON.parse(require('fs').readFileSync(0,'utf8'));
      const {tokensPerS,seconds,wallSeconds,cpuSecondsEach,peakRssMiB,loadS,loss,loadAverage,error}=r;
      console.log('troupe', JSON.stringify(error ? {error} : {tokensPerS,seconds,wallSeconds,cpuSecondsEach,peakRssMiB,loadS,loss,loadAverage}))"
fi
if [[ $sides != troupe ]]; then
  flags=(--checkpoint --reps "$reps" --threads 1)
  [[ $precision == bf16 ]] && flags+=(--bf16)
  "$python" scripts/bench/torch-memory.py "$dir" full 1 256 "${flags[@]}" 2>/dev/null |
    sed -n 's/^RESULT //p' | node -e "const r=JSON.parse(require('fs').readFileSync(0,'utf8'));
      const {tokensPerS,seconds,wallSeconds,cpuSecondsEach,peakRssMiB,loadS,loss,loadAverage}=r;
      console.log('torch ', JSON.stringify({tokensPerS,seconds,wallSeconds,cpuSecondsEach,peakRssMiB,loadS,loss,loadAverage}))"
fi
