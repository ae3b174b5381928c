#!/usr/bin/env bash
# `npm run bench`: every benchmark, one after another (components must be built: bin/dev-setup).
# Figures depend on the machine's load; each script prints the load average with its numbers.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for b in timeline.sh npm-start.sh control-plane.sh workloads.sh features.sh certs.sh membership.sh fips.sh charm-dispatch.sh snapshots.sh cluster-port.sh snap.sh load-balancer.sh; do
  echo "=== $b"
  bash "$here/$b" || echo "=== $b failed with exit code $?"
done
