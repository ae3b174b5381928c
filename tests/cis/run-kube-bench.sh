#!/usr/bin/env bash
# Runs kube-bench (the pinned build, snap/components/kube-bench) against one node with our
# benchmark config, tests/cis/cfg/ck8s-cis-1.12: the CIS Kubernetes Benchmark v1.12 controls
# mapped onto our file layout.
#
# Usage: tests/cis/run-kube-bench.sh [--json] [--targets LIST] [--netns NAME] [--keep] <K8S_ROOT>
#
#   <K8S_ROOT>      the node's root ("/" for a snap install). The template's @K8S_ROOT@ is
#                   replaced with it, in a temporary config dir.
#   --json          print kube-bench's JSON on stdout (the summary goes to stderr)
#   --targets LIST  kube-bench targets; default master,etcd,controlplane,policies, plus node
#                   when a kubelet of this node is running
#   --netns NAME    run kube-bench in /run/netns/NAME. Default: the network namespace of the
#                   node's k8sd (from its pid file), so kubectl (policies) reaches the node's
#                   apiserver at the address in admin.conf.
#   --keep          keep the temporary dir (config and kube-bench's JSON) and print its path
#
# Exit status: 0 with no FAIL, 1 with at least one FAIL, 2 when kube-bench could not run.
# FAILs that check a flag the operator weakened on purpose (accept-insecure-node-args) are marked
# "accepted deviation" in the summary and listed under "AcceptedDeviations" in the JSON; they still
# count as FAILs.
set -euo pipefail

BENCHMARK=ck8s-cis-1.12
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

json=0 keep=0 targets="" netns="" root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    --keep) keep=1 ;;
    --targets) targets="$2"; shift ;;
    --targets=*) targets="${1#*=}" ;;
    --netns) netns="$2"; shift ;;
    --netns=*) netns="${1#*=}" ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) [ -z "$root" ] || { echo "one K8S_ROOT only" >&2; exit 2; }; root="$1" ;;
  esac
  shift
done
[ -n "$root" ] || root="${K8S_ROOT:-}"
[ -n "$root" ] || { echo "usage: $0 [--json] [--targets LIST] [--netns NAME] [--keep] <K8S_ROOT>" >&2; exit 2; }
root="$(realpath -m "$root")"
[ -d "$root" ] || { echo "K8S_ROOT $root does not exist" >&2; exit 2; }
# The root goes into shell commands inside single quotes and into sed: keep it plain.
if ! [[ "$root" =~ ^/[A-Za-z0-9._/+-]*$ ]]; then
  echo "K8S_ROOT $root has characters this script does not quote; use a plain path" >&2
  exit 2
fi
prefix="${root%/}" # "" for /

kb_dir="$(bash "$repo/snap/components/bin-dir.sh" kube-bench)"
kube_bench="$kb_dir/kube-bench"
upstream_cfg="$(cd "$kb_dir/.." && pwd)/cfg"
k8s_bin="$(bash "$repo/snap/components/bin-dir.sh" kubernetes)"
[ -x "$kube_bench" ] || { echo "kube-bench is not built: snap/components/build-all.sh" >&2; exit 2; }
[ -f "$upstream_cfg/config.yaml" ] || { echo "no upstream cfg/config.yaml next to $kube_bench" >&2; exit 2; }

tmp="$(mktemp -d /tmp/kube-bench.XXXXXX)"
cleanup() { if [ "$keep" = 1 ]; then echo "kept: $tmp" >&2; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

# Main config: upstream's, with our benchmark added to target_mapping (kube-bench refuses a
# benchmark it has no targets for). The benchmark's own config.yaml is merged over it.
mkdir -p "$tmp/cfg/$BENCHMARK"
awk -v b="$BENCHMARK" '
  { print }
  /^target_mapping:/ {
    printf "  \"%s\":\n", b
    n = split("master etcd controlplane node policies", t, " ")
    for (i = 1; i <= n; i++) printf "    - \"%s\"\n", t[i]
  }' "$upstream_cfg/config.yaml" >"$tmp/cfg/config.yaml"
grep -q "\"$BENCHMARK\":" "$tmp/cfg/config.yaml" || { echo "no target_mapping in upstream config.yaml" >&2; exit 2; }
for f in "$here/cfg/$BENCHMARK"/*.yaml; do
  sed "s|@K8S_ROOT@|$prefix|g" "$f" >"$tmp/cfg/$BENCHMARK/$(basename "$f")"
done

# Processes of this node: their flags name files under <root>/etc/kubernetes/.
node_procs() { ps -ww -eo args= | grep -F -e "=$prefix/etc/kubernetes/" | awk '{print $1}' || true; }
if [ -z "$targets" ]; then
  targets="master,etcd,controlplane,policies"
  if node_procs | grep -qE '(^|/)kubelet$'; then targets="master,etcd,controlplane,node,policies"; fi
fi
if ! node_procs | grep -qE '(^|/)kube-apiserver$'; then
  echo "warning: no kube-apiserver of $root is running; flag checks will fail" >&2
fi

run_in=()
if [ -n "$netns" ]; then
  run_in=(nsenter "--net=/run/netns/$netns")
elif pidfile="$prefix/var/snap/k8s/common/var/lib/k8sd/state/k8sd.pid" && [ -r "$pidfile" ]; then
  pid="$(tr -dc 0-9 <"$pidfile")"
  if [ -n "$pid" ] && [ -e "/proc/$pid/ns/net" ] && [ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]; then
    run_in=(nsenter "--target=$pid" --net)
  fi
fi

# kubectl for the policies checks: the pinned one first, with the node's admin kubeconfig.
# COLUMNS: the audits run `ps -ef` (no -ww). Without a terminal, procps may cut each line at 80
# columns (it does under pytest), and every flag past that column would look unset.
set +e
"${run_in[@]}" env PATH="$k8s_bin:$PATH" KUBECONFIG="$prefix/etc/kubernetes/admin.conf" COLUMNS=131072 \
  "$kube_bench" run --config-dir "$tmp/cfg" --config "$tmp/cfg/config.yaml" \
  --benchmark "$BENCHMARK" --targets "$targets" --json --outputfile "$tmp/result.json" \
  >"$tmp/kube-bench.out" 2>"$tmp/kube-bench.err"
rc=$?
set -e
if [ ! -s "$tmp/result.json" ]; then
  echo "kube-bench failed (exit $rc):" >&2
  cat "$tmp/kube-bench.out" "$tmp/kube-bench.err" >&2
  exit 2
fi

# Security-critical flags the operator weakened on purpose (accept-insecure-node-args; k8sd records
# them beside the args files): every FAIL that checks one of these flags is a noted deviation, listed
# as such in the summary and, with --json, under "AcceptedDeviations".
accepted="$prefix/var/snap/k8s/common/args/accepted-insecure-args.json"
python3 - "$tmp/result.json" "$accepted" <<'EOF'
import json, os, re, sys
path, accepted = sys.argv[1:]
data = json.load(open(path))
if not isinstance(data, dict):
    data = {"Controls": data}
weakened = json.load(open(accepted)).get("weakened", []) if os.path.exists(accepted) else []
deviations = []
for c in data["Controls"]:
    for t in c.get("tests", []):
        for r in t.get("results", []):
            if r["status"] != "FAIL":
                continue
            text = " ".join(str(r.get(k) or "") for k in ("test_desc", "expected_result", "audit"))
            for w in weakened:
                if re.search(rf"--{re.escape(w['flag'])}(?![A-Za-z0-9-])", text):
                    deviations.append({"test_number": r["test_number"], "test_desc": r["test_desc"], "service": w["service"], "flag": w["flag"], "value": w["value"]})
                    break
data["AcceptedDeviations"] = deviations
data["AcceptedInsecureArgs"] = weakened
json.dump(data, open(path, "w"))
EOF

[ "$json" = 1 ] && cat "$tmp/result.json"

python3 - "$tmp/result.json" "$BENCHMARK" "$root" "$targets" <<'EOF' >&$([ "$json" = 1 ] && echo 2 || echo 1)
import json, sys
path, bench, root, targets = sys.argv[1:]
data = json.load(open(path))
controls = data["Controls"]
print(f"kube-bench {bench} on {root} (targets {targets})")
tot = {"PASS": 0, "FAIL": 0, "WARN": 0, "INFO": 0}
for c in controls:
    counts = {k: c.get(f"total_{k.lower()}", 0) for k in tot}
    for k in tot:
        tot[k] += counts[k]
    print(f"  {c['node_type']:<13} {c['id']:>2} {c['text']:<42} " + "  ".join(f"{k} {v:>3}" for k, v in counts.items()))
print(f"  {'total':<56} " + "  ".join(f"{k} {v:>3}" for k, v in tot.items()))
noted = {d["test_number"]: d for d in data["AcceptedDeviations"]}
for state in ("FAIL", "WARN"):
    rows = [r for c in controls for t in c.get("tests", []) for r in t.get("results", []) if r["status"] == state]
    if rows:
        print(f"{state}:")
        for r in rows:
            d = noted.get(r["test_number"]) if state == "FAIL" else None
            note = f"  [accepted deviation: {d['service']} --{d['flag']}{'' if d['value'] is None else '=' + d['value']}]" if d else ""
            print(f"  {r['test_number']:<8} {r['test_desc']}{note}")
weakened = data["AcceptedInsecureArgs"]
print("accepted insecure overrides (accept-insecure-node-args): " + (", ".join(f"{w['service']} --{w['flag']}{' (removed)' if w['value'] is None else '=' + w['value']}" for w in weakened) or "none"))
EOF

fails="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c=d["Controls"] if isinstance(d,dict) else d; print(sum(x.get("total_fail",0) for x in c))' "$tmp/result.json")"
[ "$fails" = 0 ] || exit 1
