#!/usr/bin/env bash
# `npm run snap`: builds the k8s snap from snapcraft.yaml (src/snap/pack.ts) and prints the .snap
# file's path on its last line. The output goes to ~/.cache/k8s-ts/snap/ (K8S_SNAP_OUT overrides).
# bin/dev-setup first: apt packages (squashfs-tools among them), npm ci, tsc, component recipes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/bin/dev-setup" >&2
exec "$here/bin/node-runtime" "$here/dist/snap/main.js" "$@"
