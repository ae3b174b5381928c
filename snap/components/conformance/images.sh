#!/usr/bin/env bash
# The images the sig-network and sig-node conformance tests run, built here without a registry and
# named exactly as e2e's test/utils/image/manifest.go (at the pinned Kubernetes) expects, so that
# nothing is ever pulled: each is an OCI archive that the nodes side-load from $SNAP_COMMON/images.
# Debian bookworm packages (mmdebstrap --variant=extract: the packages and their dependencies,
# unpacked, no maintainer scripts) stand in for upstream's Alpine/Debian bases:
#   busybox            Debian's dynamically linked busybox, one symlink per applet in /bin; /bin/sh is bash
#   agnhost (+ prev)   agnhost built from k/k test/images/agnhost, on a tools rootfs (bash, dig, getent, curl,
#                      nc, ip, iperf, socat, util-linux) with the image's user 1000 / group 50000
#   glibc-dns-testing  the same tools rootfs (dig on glibc)
#   nginx, nginx-new   Debian's nginx-light, in the foreground
#   nonroot            busybox rootfs, USER 1234
#   nonewprivs         busybox rootfs + nnp (k/k test/images/nonewprivs) setuid root
# pause comes from the pause recipe. Usage: images.sh K8S_VERSION OUT_DIR GOBIN
#   (GOBIN holds agnhost and nnp, built from k8s.io/kubernetes@K8S_VERSION by build.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
kversion="$1"; out="$2"; gobin="$3"
if ! command -v mmdebstrap >/dev/null; then
  echo "conformance: mmdebstrap is not installed; install it (apt-get install mmdebstrap) to build the e2e images" >&2
  exit 1
fi
suite=bookworm
mirrors=("deb http://deb.debian.org/debian $suite main" "deb http://deb.debian.org/debian-security $suite-security main")
go_env
kdir="$(mod_field "k8s.io/kubernetes@$kversion" Dir)"
manifest="$kdir/test/utils/image/manifest.go"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

# image_name ID: registry/name:version of configs[ID] in manifest.go (PromoterE2eRegistry only).
image_name() {
  local line
  line="$(grep -E "^\s*configs\[$1\] = Config\{list\.PromoterE2eRegistry, " "$manifest" || true)"
  [[ -n "$line" ]] || { echo "conformance: $manifest has no PromoterE2eRegistry entry for $1" >&2; exit 1; }
  echo "$line" | sed -E 's#.*"([^"]+)", "([^"]+)"\}.*#registry.k8s.io/e2e-test-images/\1:\2#'
}

# debian_rootfs DIR PKG...: the packages and their dependencies unpacked into DIR, plus /etc files.
debian_rootfs() {
  local dir="$1"; shift
  local IFS=,
  mmdebstrap --quiet --mode=root --variant=extract --include="$*" "$suite" "$dir" "${mirrors[@]}" >&2
  unset IFS
  rm -rf "$dir/var/cache/apt" "$dir/var/lib/apt/lists" "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/info" "$dir/usr/share/locale"
  mkdir -p "$dir"/{etc,tmp,root,proc,sys,dev,run,var/tmp}
  chmod 1777 "$dir/tmp" "$dir/var/tmp"; chmod 0700 "$dir/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' > "$dir/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$dir/etc/nsswitch.conf"
}

# busybox_applets DIR: like upstream's busybox image, every applet in /bin (tests run e.g. /bin/sysctl),
# and at its full path (/sbin/…, /usr/bin/…) where that is still free.
busybox_applets() {
  local applet
  for applet in $(chroot "$1" /bin/busybox --list-full); do
    [[ -e "$1/bin/${applet##*/}" || -L "$1/bin/${applet##*/}" ]] || ln -s busybox "$1/bin/${applet##*/}"
    [[ -e "$1/$applet" || -L "$1/$applet" ]] || { mkdir -p "$1/$(dirname "$applet")"; ln -s /bin/busybox "$1/$applet"; }
  done
}

list=()
archive() { # archive FILE IMAGE ROOTFS ENTRYPOINT CMD [USER]
  oci_archive "$out/$1" "$2" "$3" "$4" "$5" "${6:-}"
  list+=("$1 $2")
}

# busybox, nonroot, nonewprivs
bb="$work/busybox"
debian_rootfs "$bb" busybox bash
# /bin/sh is bash: Debian's busybox ash (1.35) drops environment variables whose names are not shell
# identifiers (data-1, 1-x, $_-x), which the env tests of ConfigMaps and Secrets expect `sh -c env`
# to print (upstream's busybox image passes them through).
ln -s bash "$bb/bin/sh"
busybox_applets "$bb"
archive busybox.tar "$(image_name BusyBox)" "$bb" null '["sh"]'
archive nonroot.tar "$(image_name NonRoot)" "$bb" null '["sh"]' 1234
cp -a "$bb" "$work/nnp"; mkdir -p "$work/nnp/usr/local/bin"
install -m 4755 "$gobin/nnp" "$work/nnp/usr/local/bin/nnp"
archive nonewprivs.tar "$(image_name Nonewprivs)" "$work/nnp" null '["nnp"]'

# agnhost (current and previous tag), glibc-dns-testing
tools="$work/tools"
debian_rootfs "$tools" bash coreutils dash grep sed findutils procps libc-bin dnsutils curl netcat-openbsd iproute2 iperf socat util-linux
# The links that maintainer scripts (not run by the extract variant) would make: sh, and nc/netcat
# (update-alternatives in netcat-openbsd's postinst).
[[ -e "$tools/bin/sh" || -L "$tools/bin/sh" ]] || ln -s dash "$tools/bin/sh"
ln -sf nc.openbsd "$tools/bin/nc"; ln -sf nc.openbsd "$tools/bin/netcat"
printf 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >> "$tools/etc/passwd"
printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >> "$tools/etc/group"
mkdir -p "$tools/home/user-defined-in-image" "$tools/uploads"
archive glibc-dns-testing.tar "$(image_name GlibcDnsTesting)" "$tools" null '["bash"]'
install -m 0755 "$gobin/agnhost" "$tools/agnhost"
ln -s agnhost "$tools/agnhost-2"
cp "$kdir/test/images/agnhost/porter/localhost.crt" "$kdir/test/images/agnhost/porter/localhost.key" "$tools/"
chmod 0644 "$tools/localhost.crt" "$tools/localhost.key"
mkdir -p "$tools/usr/local/bin"; ln -sf /usr/bin/iperf "$tools/usr/local/bin/iperf"
archive agnhost.tar "$(image_name Agnhost)" "$tools" '["/agnhost"]' '["pause"]'
archive agnhost-prev.tar "$(image_name AgnhostPrev)" "$tools" '["/agnhost"]' '["pause"]'

# nginx (both tags)
ng="$work/nginx"
debian_rootfs "$ng" nginx-light
mkdir -p "$ng/var/lib/nginx" "$ng/var/log/nginx" "$ng/var/www/html"
ln -sf /dev/stdout "$ng/var/log/nginx/access.log"; ln -sf /dev/stderr "$ng/var/log/nginx/error.log"
[[ -f "$ng/var/www/html/index.html" ]] || echo '<html><body>Welcome to nginx!</body></html>' > "$ng/var/www/html/index.html"
archive nginx.tar "$(image_name Nginx)" "$ng" '["nginx","-g","daemon off;"]' null
archive nginx-new.tar "$(image_name NginxNew)" "$ng" '["nginx","-g","daemon off;"]' null

printf '%s\n' "${list[@]}" > "$out/list"
