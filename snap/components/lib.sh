#!/usr/bin/env bash
# Shared helpers for component recipes. Each recipe is <name>/version + <name>/build.sh.
# Outputs are cached outside the repo, keyed by component name and version, so
# snapcraft parts, `npm start` and the tests all reuse one build.
set -euo pipefail

component_cache_root() {
  echo "${K8S_COMPONENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-ts/components}"
}

# Go components are built once, with Go's FIPS 140-3 module (GOFIPS140=v1.0.0): the same
# binaries serve both modes, k8sd running them with GODEBUG=fips140=on in FIPS mode and
# fips140=off otherwise. K8S_GOFIPS140= (empty) builds without the module; k8sd then refuses
# them in FIPS mode.
export K8S_GOFIPS140="${K8S_GOFIPS140-v1.0.0}"
# The cluster's Go components (src/layout.ts GO_COMPONENTS lists the same). kube-bench, a test
# tool, is built the ordinary way.
GO_FIPS_COMPONENTS=" etcd kubernetes containerd runc cni coredns flannel local-path-provisioner metrics-server gobgp traefik "

# gofips_for NAME: the GOFIPS140 setting recipe NAME builds with (empty: none).
gofips_for() { [[ "$GO_FIPS_COMPONENTS" == *" $1 "* ]] && echo "$K8S_GOFIPS140" || true; }

# cache_version NAME VERSION: the cache key, <version>-fips140-<setting> for builds with the module.
cache_version() { local f; f="$(gofips_for "$1")"; echo "$2${f:+-fips140-$f}"; }

# go_env [NAME]: hermetic Go settings shared by every recipe (proxy only, local toolchain), and
# GOFIPS140 for the cluster's Go components.
go_env() {
  export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
  local f; f="$(gofips_for "${1:-}")"
  if [[ -n "$f" ]]; then export GOFIPS140="$f"; else unset GOFIPS140; fi
  export GOPROXY="${GOPROXY_OVERRIDE:-https://proxy.golang.org}"
  export GOPATH="${GOPATH:-$HOME/go}"
}

# stamp_done DIR: mark a cache entry complete (written last, so a crash mid-build never looks cached).
stamp_done() { date -u +%FT%TZ > "$1/.complete"; }
is_done() { [[ -f "$1/.complete" ]]; }

# mod_field MOD@VER FIELD: one string field (GoMod, Dir, Zip, Info, Sum) of `go mod download -json`.
mod_field() {
  go mod download -json "$1" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" | head -1
}

# mod_go_line MOD@VER: the `go` directive of that module's go.mod (GODEBUG defaults follow the main module).
mod_go_line() { sed -n 's/^go \([0-9.]*\).*/\1/p' "$(mod_field "$1" GoMod)"; }

# mod_commit MOD@VER: the VCS commit if the proxy recorded an Origin (it usually does not); empty otherwise.
mod_commit() { sed -n 's/.*"Hash":"\([0-9a-f]\{40\}\)".*/\1/p' "$(mod_field "$1" Info)" | head -1; }

# go_wrapper_module NAME MOD@VER [MOD@VER...]: turn the current (empty) directory into a wrapper
# module requiring each MOD@VER, for mains that `go install pkg@version` cannot build (replace
# directives, or a proxy that refuses the module's version list). The go line and a one-line
# godebug directive are copied from the first module, since GODEBUG defaults follow the main module.
go_wrapper_module() {
  local name="$1" m godebug modfile
  shift
  go mod init "k8s-ts/$name" >&2
  modfile="$(mod_field "$1" GoMod)"
  go mod edit -go="$(mod_go_line "$1")"
  godebug="$(sed -n 's/^godebug \([^(].*\)/\1/p' "$modfile")"
  [[ -z "$godebug" ]] || go mod edit -godebug="$godebug"
  {
    printf '//go:build tools\n\n// Package tools pins the modules whose mains this wrapper builds.\npackage tools\n\nimport (\n'
    for m in "$@"; do go mod edit -require="$m"; printf '\t_ "%s"\n' "${m%@*}"; done
    printf ')\n'
  } > tools.go
  go mod tidy >&2
}

# busybox_rootfs VERSION ROOTFS: a minimal root filesystem from Debian's busybox-static VERSION
# (without its "1:" epoch): /bin/busybox, one symlink per applet, root and nobody users, /tmp.
# Run in an empty scratch directory (apt-get download writes the .deb there).
busybox_rootfs() {
  local version="$1" rootfs="$2" applet
  # apt-get download needs no root; it drops privileges to _apt when it can, so give it a writable dir.
  chmod 0777 .
  if ! apt-get download "busybox-static=1:$version" >&2; then
    echo "busybox-static 1:$version is not downloadable (apt lists stale or version gone)" >&2
    return 1
  fi
  dpkg-deb -x busybox-static_*.deb pkg
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
  chmod 1777 "$rootfs/tmp"; chmod 0700 "$rootfs/root"
  cp pkg/bin/busybox "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list-full); do
    [[ -e "$rootfs/$applet" || -L "$rootfs/$applet" ]] || ln -s /bin/busybox "$rootfs/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
}

# static_image OUT_TAR IMAGE_NAME BINARY: the image every static Go component here ships: BINARY as
# /bin/<its name> (the entrypoint), root and nobody users without a shell, a sticky /tmp, nothing
# else (no shell, no libc), run as nobody (65534:65534).
static_image() {
  local out_tar="$1" image="$2" binary="$3" rootfs
  rootfs="$(mktemp -d)"
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 0755 "$rootfs"; chmod 1777 "$rootfs/tmp"
  cp "$binary" "$rootfs/bin/$(basename "$binary")"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  oci_archive "$out_tar" "$image" "$rootfs" "[\"/bin/$(basename "$binary")\"]" null 65534:65534
  rm -rf "$rootfs"
}

# record_checksums DIR: DIR/SHA256SUMS, the SHA-256 of every file (and symlink, by its target) under DIR/bin (sha256sum format,
# paths relative to DIR). k8sd and bin-dir.sh refuse a file whose hash no longer matches.
record_checksums() {
  (cd "$1" && find bin \( -type f -o -type l \) -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) > "$1/SHA256SUMS.tmp"
  chmod 0644 "$1/SHA256SUMS.tmp"
  mv "$1/SHA256SUMS.tmp" "$1/SHA256SUMS"
}

# verify_checksums DIR: every file under DIR/bin is listed in DIR/SHA256SUMS with its hash (no file
# changed, none added); otherwise a message naming the file on stderr and status 1. Symlinks are
# checked by their target, each target hashed once (six kubernetes names share one binary).
verify_checksums() {
  local dir="$1" name="" sum want file real got listed present bad=""
  local rebuild="rm -rf '$dir' && bash snap/components/build-all.sh $(basename "$(dirname "$dir")")"
  if [[ ! -f "$dir/SHA256SUMS" ]]; then
    echo "component cache: $dir has no SHA256SUMS (built before checksums were recorded); run snap/components/build-all.sh $(basename "$(dirname "$dir")") to record them, or rebuild: $rebuild" >&2
    return 1
  fi
  local -A hashed=()
  while read -r want file; do
    [[ -n "$file" ]] || continue
    file="${file#\*}"
    if [[ ! -e "$dir/$file" ]]; then bad+="$file: missing; "; continue; fi
    real="$(realpath "$dir/$file")"
    if [[ -z "${hashed[$real]:-}" ]]; then
      read -r sum name < <(sha256sum "$real")
      hashed[$real]="$sum"
    fi
    got="${hashed[$real]}"
    [[ "$got" == "$want" ]] || bad+="$file: FAILED (SHA-256 $got, recorded $want); "
  done < "$dir/SHA256SUMS"
  if [[ -n "$bad" ]]; then
    echo "component cache: checksum mismatch in $dir: ${bad%; }; refusing to use it. Rebuild it: $rebuild" >&2
    return 1
  fi
  listed="$(sed 's/^[0-9a-f]*  //' "$dir/SHA256SUMS" | LC_ALL=C sort)"
  present="$(cd "$dir" && find bin \( -type f -o -type l \) | LC_ALL=C sort)"
  if [[ "$listed" != "$present" ]]; then
    echo "component cache: $dir/bin holds files with no recorded checksum: $(comm -13 <(echo "$listed") <(echo "$present") | tr '\n' ' ')- refusing to use it. Rebuild it: $rebuild" >&2
    return 1
  fi
}

# publish_out TMP OUT: record TMP's checksums, stamp it complete, then move it into place as OUT and print OUT/bin.
publish_out() {
  record_checksums "$1"
  stamp_done "$1"
  rm -rf "$2"; mkdir -p "$(dirname "$2")"; mv "$1" "$2"
  echo "$2/bin"
}

# oci_archive OUT_TAR IMAGE_NAME ROOTFS_DIR [ENTRYPOINT_JSON] [CMD_JSON] [USER]
# Writes a single-platform (linux/amd64) OCI image layout as a tar archive that `ctr images import`
# accepts: oci-layout, index.json (ref.name + io.containerd.image.name annotations) and sha256 blobs
# (gzip layer, config, manifest). ENTRYPOINT_JSON/CMD_JSON are JSON arrays, e.g. '["/pause"]';
# USER is e.g. 65535:65535 (empty = root).
oci_archive() {
  local out_tar="$1" image="$2" rootfs="$3" entrypoint="${4:-null}" cmd="${5:-null}" user="${6:-}"
  local d; d="$(mktemp -d)"
  mkdir -p "$d/blobs/sha256"
  # Layer: deterministic-ish tar (sorted, root-owned, fixed mtime) of the rootfs contents.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' -C "$rootfs" -cf "$d/layer.tar" .
  local diff_id; diff_id="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 "$d/layer.tar"
  local layer_digest layer_size
  layer_digest="$(sha256sum "$d/layer.tar.gz" | cut -d' ' -f1)"; layer_size="$(stat -c %s "$d/layer.tar.gz")"
  mv "$d/layer.tar.gz" "$d/blobs/sha256/$layer_digest"

  printf '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"%s","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"k8s-ts oci_archive"}]}' \
    "$user" "$entrypoint" "$cmd" "$diff_id" > "$d/config.json"
  local cfg_digest cfg_size
  cfg_digest="$(sha256sum "$d/config.json" | cut -d' ' -f1)"; cfg_size="$(stat -c %s "$d/config.json")"
  mv "$d/config.json" "$d/blobs/sha256/$cfg_digest"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cfg_digest" "$cfg_size" "$layer_digest" "$layer_size" > "$d/manifest.json"
  local man_digest man_size
  man_digest="$(sha256sum "$d/manifest.json" | cut -d' ' -f1)"; man_size="$(stat -c %s "$d/manifest.json")"
  mv "$d/manifest.json" "$d/blobs/sha256/$man_digest"

  local tag="${image##*:}"
  [[ "$image" == *:* && "$tag" != */* ]] || tag=latest
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_digest" "$man_size" "$image" "$tag" > "$d/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"

  mkdir -p "$(dirname "$out_tar")"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' -C "$d" -cf "$out_tar.tmp" oci-layout index.json blobs
  mv "$out_tar.tmp" "$out_tar"
  rm -rf "$d"
}
