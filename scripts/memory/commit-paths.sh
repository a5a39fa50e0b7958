#!/usr/bin/env bash
# Commit some paths of a shared work tree without touching what others staged: a temporary index
# from HEAD, the given paths' working-tree contents (or PATH=FILE: FILE's contents as PATH, for
# a file with other people's edits beside one's own), one commit, and the real index's entries
# for those paths moved to the committed blobs.
#
#   scripts/memory/commit-paths.sh "message" path [path=file ...]
set -euo pipefail
msg=$1
shift
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
head=$(git rev-parse HEAD)
GIT_INDEX_FILE=$tmp git read-tree "$head"
entries=()
for spec in "$@"; do
  path=${spec%%=*}
  file=${spec#*=}
  blob=$(git hash-object -w "$file")
  mode=100644
  [[ -x $file ]] && mode=100755
  GIT_INDEX_FILE=$tmp git update-index --add --cacheinfo "$mode,$blob,$path"
  entries+=("$mode,$blob,$path")
done
tree=$(GIT_INDEX_FILE=$tmp git write-tree)
commit=$(git commit-tree "$tree" -p "$head" -m "$msg")
# only if HEAD is still the commit read (another commit in between: refused, nothing lost)
git update-ref HEAD "$commit" "$head"
for e in "${entries[@]}"; do git update-index --add --cacheinfo "$e"; done
git log --oneline -1
