#!/usr/bin/env bash
# Time from `install` to Active for the first k8s unit (bootstrap), a joining control-plane unit and
# two joining workers, on the netns test bed with the packed charms and the packed snap, plus the .charm
# sizes: runs tests/integration/test_charm_scale.py (one module, ~5-15 minutes depending on load) and
# prints its measurements. Not part of run.sh (it needs a test bed and root).
#
# Usage: sudo tests/bench/charm-scale.sh        PYTEST=... overrides the pytest binary.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pytest=${PYTEST:-/tmp/work/venv/bin/pytest}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$root"
started=$(date +%s)
if ! "$pytest" -p no:cacheprovider --timeout=1800 tests/integration/test_charm_scale.py -x -s >"$log" 2>&1; then
  tail -60 "$log" >&2
  echo "charm-scale: the test failed; no measurement" >&2
  exit 1
fi
echo "charm scale-out on $(nproc) CPUs (load $(cut -d' ' -f1-3 /proc/loadavg)), module $(( $(date +%s) - started )) s:"
grep -E '^\.charm sizes:|^install -> Active:' "$log" | sed 's/^/  /'
