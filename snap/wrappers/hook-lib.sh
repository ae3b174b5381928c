# Shared by the snap hooks (sourced, not run): the snap's services and what each one runs.
# Installed as $SNAP/wrappers/hook-lib.sh (snapcraft.yaml, part wrappers).

# snap_services: the snap's daemons, in snap.yaml order, one per line (from $SNAP/meta/snap.yaml,
# which the packer writes with js-yaml: apps at two spaces, their keys at four).
snap_services() {
  awk '
    /^apps:/ { in_apps = 1; next }
    in_apps && /^[^ ]/ { in_apps = 0 }
    in_apps && /^  [A-Za-z0-9-]+:$/ { app = $1; sub(":", "", app); next }
    in_apps && /^    daemon:/ { print app }
  ' "$SNAP/meta/snap.yaml"
}

# service_fingerprint SVC: sha256 of what the service runs. Go components: their binary (the kube-*
# names are links to `kubernetes`). k8sd and k8s-apiserver-proxy run on the snap's Node: the
# launcher, the Node binary, the compiled code and the production node_modules.
service_fingerprint() {
  local svc="$1" bin="$SNAP/bin/$1"
  if [[ ! -e "$bin" ]]; then echo missing; return; fi
  if [[ "$(head -c 2 "$bin")" == "#!" ]]; then
    {
      sha256sum "$bin" "$SNAP/bin/node" "$SNAP/bin/node-runtime" "$SNAP/wrappers/run-service"
      find "$SNAP/dist" "$SNAP/node_modules" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sed "s#$SNAP/##" | sha256sum | cut -d' ' -f1
  else
    { sha256sum "$(readlink -f "$bin")" "$SNAP/wrappers/run-service"; } | sed "s#$SNAP/##" | sha256sum | cut -d' ' -f1
  fi
}

# refresh_state_dir: where pre-refresh leaves its record for post-refresh ($SNAP_COMMON is shared
# by all revisions; $SNAP_DATA is per revision).
refresh_state_dir() { echo "$SNAP_COMMON/var/lib/k8sd/refresh"; }

# k8s_cli ARGS...: the snap's own CLI, without writing a compile cache (a hook may be the last
# thing that runs before its directories are deleted).
k8s_cli() { NODE_DISABLE_COMPILE_CACHE=1 "$SNAP/wrappers/run-cli" k8s "$@"; }

hook_log() { echo "k8s ${HOOK_NAME:-hook}: $*" >&2; }
