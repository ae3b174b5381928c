#!/usr/bin/env bash
# Packs the TypeScript charms into .charm files (zip archives Juju deploys):
#   dispatch                      sh script: runs lib/<charm>/src/main.js on the Node the k8s snap
#                                 brings (/snap/k8s/current/bin/node); before the snap is there it
#                                 runs bin/install-snap (hook tools and snap only) first
#   bin/install-snap              installs the snap from the snap-installation resource or 'channel'
#   bin/node                      only with --bundle-node: the pinned Node inside the charm (+126 MB)
#   lib/{runtime,k8s-common,<charm>}/src/*.js   the compiled charm (tsc, no bundler)
#   node_modules/                 execa, js-yaml and their dependencies
#   package.json                  {"type": "module"}
#   metadata.yaml config.yaml actions.yaml manifest.yaml   generated from charmcraft.yaml
#
# Usage: charms/pack.sh [--out DIR] [--bundle-node] [k8s] [k8s-worker]   (default: both, into charms/dist)
#        charms/pack.sh --stage <charm> <dir>              (only lay the charm tree out in <dir>)
#        charms/pack.sh --prebuild [--prebuilt-root DIR] [k8s] [k8s-worker]
#                      (lay each tree out in <charm>/prebuilt/ for `charmcraft pack`, whose dump part
#                       copies it; charmcraft writes the metadata files itself)
# Env:   K8S_CHARM_NODE  Node binary to bundle (default: node_modules/node/bin/node)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
node_bin=${K8S_CHARM_NODE:-$root/node_modules/node/bin/node}
out=$here/dist
stage_only=""
bundle_node=""
prebuild=""
prebuilt_root=""
charms=()

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --bundle-node) bundle_node=1; shift ;;
    --stage) stage_only=$3; charms=("$2"); shift 3 ;;
    --prebuild) prebuild=1; shift ;;
    --prebuilt-root) prebuilt_root=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    k8s|k8s-worker) charms+=("$1"); shift ;;
    *) echo "pack.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#charms[@]} -gt 0 ] || charms=(k8s k8s-worker)

[ -x "$node_bin" ] || { echo "pack.sh: no Node binary at $node_bin; run npm ci or set K8S_CHARM_NODE" >&2; exit 1; }
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "pack.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Compile into a private directory so concurrent packs and test runs do not collide.
"$root/node_modules/.bin/tsc" -p "$here/tsconfig.json" --outDir "$work/build"
ln -s "$root/node_modules" "$work/node_modules"

# The runtime dependencies: execa and js-yaml and everything they pull in, resolved as Node would.
runtime_modules=$("$node_bin" -e '
  const fs = require("fs"), path = require("path");
  const root = process.argv[1], seen = new Set();
  function visit(name, from) {
    for (let dir = from; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, "node_modules", name);
      // As Node does: no node_modules/node_modules (a stray self-link there must not be followed).
      if (path.basename(dir) !== "node_modules" && fs.existsSync(path.join(candidate, "package.json"))) {
        if (seen.has(candidate)) return;
        seen.add(candidate);
        const pkg = JSON.parse(fs.readFileSync(path.join(candidate, "package.json"), "utf8"));
        for (const dep of Object.keys(pkg.dependencies || {})) visit(dep, candidate);
        return;
      }
      if (dir === root) throw new Error("cannot resolve " + name + " from " + from);
    }
  }
  for (const name of ["execa", "js-yaml"]) visit(name, root);
  console.log([...seen].map((dir) => path.relative(root, dir)).join("\n"));
' "$root")

stage_charm() {
  local charm=$1 stage=$2
  mkdir -p "$stage/bin" "$stage/lib"
  for module in runtime k8s-common "$charm"; do
    mkdir -p "$stage/lib/$module"
    cp -R "$work/build/$module/src" "$stage/lib/$module/src"
  done
  # Test doubles and pack tooling stay out of the charm.
  rm -rf "$stage/lib/runtime/src/testing" "$stage/lib/runtime/src/pack"
  while IFS= read -r module; do
    mkdir -p "$stage/$module"
    cp -R "$root/$module/." "$stage/$module/"
  done <<< "$runtime_modules"
  printf '{\n  "type": "module",\n  "private": true\n}\n' > "$stage/package.json"
  cp "$here/runtime/bin/install-snap" "$stage/bin/install-snap"
  chmod 0755 "$stage/bin/install-snap"
  local node_path='${K8S_CHARM_NODE_BIN:-/snap/k8s/current/bin/node}'
  if [ -n "$bundle_node" ]; then
    cp "$node_bin" "$stage/bin/node"
    chmod 0755 "$stage/bin/node"
    node_path='$charm_dir/bin/node'
  fi
  # charmcraft generates metadata.yaml, config.yaml, actions.yaml and manifest.yaml from charmcraft.yaml.
  [ -n "$prebuild" ] || "$node_bin" "$work/build/runtime/src/pack/charm-files.js" "$here/$charm/charmcraft.yaml" "$stage" "$arch"
  cat > "$stage/dispatch" <<EOF
#!/bin/sh
# Juju runs this for every hook (JUJU_DISPATCH_PATH=hooks/<hook>), action (actions/<action>)
# and out-of-band event (a bare name such as update_status).
JUJU_DISPATCH_PATH=\${JUJU_DISPATCH_PATH:-\$0}
export JUJU_DISPATCH_PATH
charm_dir=\${JUJU_CHARM_DIR:-\$(dirname "\$(readlink -f "\$0")")}
node="$node_path"
if [ ! -x "\$node" ]; then
  # No Node yet: the k8s snap brings it. A leaving unit (state 'dying') or its last hooks need no snap.
  case "\$JUJU_DISPATCH_PATH" in
    actions/*) action-fail "the k8s snap is not installed on this unit (it brings the Node runtime this charm runs on)" </dev/null; exit 0 ;;
    hooks/stop|hooks/remove|stop|remove) exit 0 ;;
  esac
  [ "\$(state-get dying --format=json 2>/dev/null </dev/null)" = '"true"' ] && exit 0
  "\$charm_dir/bin/install-snap" </dev/null || exit 0
fi
exec "\$node" "\$charm_dir/lib/$charm/src/main.js"
EOF
  chmod 0755 "$stage/dispatch"
}

zip_dir() {
  local dir=$1 file=$2
  rm -f "$file"
  if command -v zip >/dev/null 2>&1; then
    (cd "$dir" && zip -q -r -X "$file" .)
  else
    # python3's zipfile CLI drops the executable bits, so keep them by hand.
    python3 - "$dir" "$file" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as archive:
    for base, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(base, name)
            info = zipfile.ZipInfo.from_file(path, os.path.relpath(path, src))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read())
PY
  fi
}

if [ -n "$prebuild" ]; then
  for charm in "${charms[@]}"; do
    dir=${prebuilt_root:-$here}/$charm/prebuilt
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    stage_charm "$charm" "$dir"
    echo "$dir"
  done
  exit 0
fi

if [ -n "$stage_only" ]; then
  stage_charm "${charms[0]}" "$stage_only"
  exit 0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
for charm in "${charms[@]}"; do
  stage="$work/stage/$charm"
  stage_charm "$charm" "$stage"
  file="$out/${charm}_${arch}.charm"
  zip_dir "$stage" "$file"
  echo "$file"
done
