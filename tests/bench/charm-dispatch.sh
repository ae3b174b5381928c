#!/usr/bin/env bash
# Cold dispatch time of the packed k8s charm: every Juju hook starts a fresh process,
# so this is what each hook pays before (and while) the charm works. Target: start ≤ 250 ms.
#
# Usage: tests/bench/charm-dispatch.sh [--check] [path/to/k8s_amd64.charm]
#   (no .charm given: packs charms/k8s first). RUNS=30 by default.
#   --check  exit 1 when the mean start time is over the target.
#   BENCH_TOOL=loop forces the date loop even when hyperfine is installed.
#
# Measures, each as a fresh process from the unpacked charm:
#   node      node -e 0: the Node the charm runs on alone (the floor); the charm carries none, it
#             runs on the snap's (K8S_CHARM_NODE_BIN; here the repository's pinned Node 24 stands in)
#   start     ./dispatch up to the point where it needs Juju: Node, the charm and all its modules
#             loaded, then an exit because JUJU_UNIT_NAME is unset (no hook tool runs)
#   hook      ./dispatch for an out-of-band update_status on an installed, unrelated unit, against
#             fake hook tools and a fake snap (a whole reconcile: 7 hook tool and 1 snap spawns)
# Uses hyperfine when installed, else a loop timed with date +%s%N.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fixtures=$root/charms/tests/fixtures
runs=${RUNS:-30}
node=${K8S_CHARM_NODE_BIN:-$root/node_modules/node/bin/node}
target_ms=250
check=false
charm=""
for arg in "$@"; do
  case "$arg" in
    --check) check=true ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) charm=$arg ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$charm" ]; then
  echo "packing charms/k8s…" >&2
  charm=$("$root/charms/pack.sh" --out "$work" k8s | tail -1)
fi
mkdir -p "$work/charm" "$work/bin" "$work/responses" "$work/snap"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$charm" -d "$work/charm"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$charm" "$work/charm"
  chmod +x "$work/charm/dispatch" "$work/charm/bin/install-snap"
fi

for tool in config-get relation-ids relation-list relation-get relation-set is-leader status-set \
  application-version-set juju-log open-port network-get state-get state-set secret-get; do
  ln -s "$fixtures/fake-hook-tool.sh" "$work/bin/$tool"
done
echo false > "$work/responses/is-leader"
echo '{}' > "$work/responses/config-get"
echo '{}' > "$work/responses/state-get"
echo '[]' > "$work/responses/relation-ids"
touch "$work/snap/installed" "$work/snap/held"

hook_env=(env -i "PATH=$work/bin:/usr/bin:/bin" JUJU_DISPATCH_PATH=update_status JUJU_UNIT_NAME=k8s/0
  "JUJU_CHARM_DIR=$work/charm" "FAKE_JUJU_RESPONSES=$work/responses" "FAKE_SNAP_STATE=$work/snap"
  "K8S_CHARM_SNAP_CMD=$fixtures/fake-snap.sh" "K8S_CHARM_NODE_BIN=$node")
start_env=(env -i JUJU_DISPATCH_PATH=hooks/start "JUJU_CHARM_DIR=$work/charm" "K8S_CHARM_NODE_BIN=$node")

# Sanity: the hook really reconciles.
(cd "$work/charm" && "${hook_env[@]}" "FAKE_JUJU_LOG=$work/check.log" ./dispatch)
grep -q "^status-set --application=false waiting Waiting for the 'cluster' peer relation$" "$work/check.log" \
  || { echo "charm-dispatch: the update_status dispatch did not reconcile:" >&2; cat "$work/check.log" >&2; exit 1; }

declare -A mean median minimum
measure_loop() {
  local name=$1; shift
  local samples=() i t0 t1
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000 )))
  done
  read -r mean[$name] median[$name] minimum[$name] < <(printf '%s\n' "${samples[@]}" | sort -n | awk '
    { v[NR] = $1; s += $1 }
    END { printf "%.1f %.1f %.1f\n", s / NR / 1000, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 1000, v[1] / 1000 }')
}

cd "$work/charm"
if [ "${BENCH_TOOL:-}" != loop ] && command -v hyperfine >/dev/null 2>&1; then
  tool="hyperfine $(hyperfine --version | awk '{print $2}')"
  hyperfine -N -i --runs "$runs" --style none --export-json "$work/results.json" \
    -n node "$node -e 0" \
    -n start "${start_env[*]} ./dispatch" \
    -n hook "${hook_env[*]} ./dispatch" >/dev/null 2>&1
  while read -r name m md mn; do
    mean[$name]=$m; median[$name]=$md; minimum[$name]=$mn
  done < <("$node" -e '
    const results = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
    for (const r of results) console.log(r.command, ...[r.mean, r.median, r.min].map((s) => (s * 1000).toFixed(1)));
  ' "$work/results.json")
else
  tool="a date +%s%N loop"
  measure_loop node "$node" -e 0
  measure_loop start "${start_env[@]}" ./dispatch
  measure_loop hook "${hook_env[@]}" ./dispatch
fi

echo "charm dispatch, $runs fresh processes each, measured with $tool on $(nproc) CPUs (load $(cut -d' ' -f1-3 /proc/loadavg)):"
for name in node start hook; do
  printf '  %-6s mean %7s ms   median %7s ms   min %7s ms\n' "$name" "${mean[$name]}" "${median[$name]}" "${minimum[$name]}"
done
verdict=$(awk -v m="${mean[start]}" -v t="$target_ms" 'BEGIN { print (m <= t) ? "within" : "OVER" }')
echo "dispatch start: ${mean[start]} ms mean, $verdict the ${target_ms} ms target"
echo ".charm size: $(du -k "$charm" | cut -f1) KiB ($(basename "$charm")); unpacked $(du -sk "$work/charm" | cut -f1) KiB"
if $check && [ "$verdict" = OVER ]; then exit 1; fi
