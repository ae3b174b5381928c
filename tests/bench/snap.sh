#!/usr/bin/env bash
# Snap pack benchmarks, with the components already built (bin/dev-setup):
#   full     `npm run snap` into an empty output directory: the k8s part (npm ci, tsc, npm prune,
#            one Node) is rebuilt and the tree packed with mksquashfs (components come from their cache)
#   again    the same command once more with nothing changed (the packed file is reused)
#   size     the .snap file and its inode count
# Usage: sudo tests/bench/snap.sh. The load average is printed with the figures.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=$(mktemp -d /tmp/k8s-snap-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
bash bin/dev-setup >/dev/null 2>&1
pack() { K8S_SNAP_OUT="$out" bash snap/pack.sh 2>/dev/null | tail -1; }
t0=$(date +%s.%N); file=$(pack); t1=$(date +%s.%N)
again=$(pack); t2=$(date +%s.%N)
[[ "$file" == "$again" && -f "$file" ]] || { echo "snap.sh: npm run snap did not print the same .snap twice ($file, $again)" >&2; exit 1; }
inodes=$(unsquashfs -s "$file" | sed -n 's/^Number of inodes \([0-9]*\).*/\1/p')
printf 'snap pack (load average %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  full pack into an empty output dir  %6.1f s\n' "$(echo "$t1 - $t0" | bc)"
printf '  again, nothing changed              %6.1f s\n' "$(echo "$t2 - $t1" | bc)"
printf '  .snap size                          %6.1f MiB (%s inodes)\n' "$(echo "scale=1; $(stat -c %s "$file") / 1048576" | bc)" "$inodes"
