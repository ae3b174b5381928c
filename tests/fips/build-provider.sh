#!/usr/bin/env bash
# Builds OpenSSL's FIPS provider (fips.so) from Debian's openssl source package, so
# FIPS code paths can be tested on hosts that have no FIPS provider (Debian ships none).
#
# THE MODULE BUILT HERE IS NOT FIPS 140 VALIDATED. It enforces the same algorithm
# rules as a validated module, which is all the tests need. Production FIPS hosts
# use the distribution's validated module (Ubuntu Pro fips-updates); see docs/fips.md.
#
# Output (cached outside the repository, reused when its .complete stamp exists):
#   ${K8S_COMPONENT_CACHE:-$HOME/.cache/k8s-ts/components}/openssl-fips/<version>/
#     fips.so          the provider module (point OPENSSL_MODULES at this directory)
#     fipsmodule.cnf   written by `openssl fipsinstall` (self-tests passed, HMAC recorded)
#     openssl.cnf      activates fips + base with default_properties = fips=yes, under
#                      both openssl_conf (openssl CLI, node --openssl-shared-config)
#                      and nodejs_conf (plain node --openssl-config)
#     .complete        stamp: the directory is usable
# The directory path is the only thing printed on stdout; progress goes to stderr.
#
# Environment:
#   K8S_OPENSSL_FIPS_VERSION  upstream OpenSSL version to build (default below). When the
#                             default is no longer in Debian's index, the newest 3.0.x is used.
#   K8S_COMPONENT_CACHE       cache root.
#   OPENSSL                   openssl binary used for fipsinstall (default: openssl on PATH).
set -euo pipefail

readonly DEFAULT_VERSION=3.0.22
readonly DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
requested_version=${K8S_OPENSSL_FIPS_VERSION:-}
version=${requested_version:-$DEFAULT_VERSION}
cache_root=${K8S_COMPONENT_CACHE:-$HOME/.cache/k8s-ts/components}/openssl-fips
openssl_bin=${OPENSSL:-openssl}

log() { echo "build-provider: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -f "$cache_root/$version/.complete" ]]; then
  echo "$cache_root/$version"
  exit 0
fi

command -v "$openssl_bin" >/dev/null || die "no openssl binary (set OPENSSL or install the openssl package)"
for tool in apt-get apt-cache curl sha256sum tar make gcc perl; do
  command -v "$tool" >/dev/null || die "missing build tool '$tool'"
done
[[ -r $DEBIAN_KEYRING ]] || die "missing $DEBIAN_KEYRING (install debian-archive-keyring)"

work=$(mktemp -d "${TMPDIR:-/tmp}/openssl-fips-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A private deb-src list: the host's apt configuration and lists stay untouched.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
cat >"$work/apt/sources.list" <<EOF
deb-src [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian-security bookworm-security main
EOF
apt_opts=(
  -o "Dir::Etc::sourcelist=$work/apt/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=$(id -un)"
)
log "fetching Debian source index"
apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update of the private deb-src list failed"

# Debian versions look like 3.0.22-1~deb12u2; the upstream part is before the last '-'.
mapfile -t debian_versions < <(apt-cache "${apt_opts[@]}" showsrc openssl | sed -n 's/^Version: //p' | sort -Vr)
((${#debian_versions[@]})) || die "Debian's source index lists no openssl"
debian_version=""
for candidate in "${debian_versions[@]}"; do
  if [[ ${candidate%-*} == "$version" ]]; then debian_version=$candidate; break; fi
done
if [[ -z $debian_version ]]; then
  [[ -z $requested_version ]] || die "openssl $version is not in Debian's source index (available: ${debian_versions[*]})"
  debian_version=${debian_versions[0]}
  version=${debian_version%-*}
  log "default $DEFAULT_VERSION is gone from the index; using newest: $version"
  if [[ -f "$cache_root/$version/.complete" ]]; then
    echo "$cache_root/$version"
    exit 0
  fi
fi
log "building the FIPS provider from openssl $debian_version (upstream $version)"

# apt-get source verifies every file against the signed index. Security-suite .dsc files
# are sometimes missing from the mirror (404); then fetch the orig tarball alone and
# check it against the SHA256 the same signed index gives.
orig="openssl_${version}.orig.tar.gz"
mkdir -p "$work/src"
if ! (cd "$work/src" && apt-get "${apt_opts[@]}" -qq source --download-only "openssl=$debian_version" >&2 2>"$work/apt-source.err"); then
  log "apt-get source failed ($(tail -n1 "$work/apt-source.err")); fetching the orig tarball only"
  uri_line=$(apt-get "${apt_opts[@]}" source --print-uris "openssl=$debian_version" | grep -F " $orig " || true)
  [[ -n $uri_line ]] || die "the source index has no $orig"
  url=$(echo "$uri_line" | awk '{print $1}' | tr -d "'")
  sha=$(echo "$uri_line" | awk '{print $4}' | sed 's/^SHA256://')
  curl -fsSL --retry 3 -o "$work/src/$orig" "$url" || die "download of $url failed"
  echo "$sha  $work/src/$orig" | sha256sum -c --quiet - >&2 || die "$orig does not match the SHA256 in Debian's index"
fi
[[ -f "$work/src/$orig" ]] || die "$orig was not downloaded"

# Built from the upstream (orig) tree in both cases: the FIPS provider is upstream code,
# and Debian's patches only touch packaging, paths and libssl defaults.
tar -xzf "$work/src/$orig" -C "$work/src"
tree="$work/src/openssl-$version"
[[ -d $tree ]] || die "unexpected layout of $orig (no openssl-$version/)"

jobs=$(nproc 2>/dev/null || echo 2)
start=$SECONDS
(
  cd "$tree"
  nice -n 10 ./Configure enable-fips no-shared >"$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; exit 1; }
  nice -n 10 make -j"$jobs" build_generated >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
  nice -n 10 make -j"$jobs" providers/fips.so >>"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
) || die "building providers/fips.so failed (log above)"
log "fips.so built in $((SECONDS - start)) s"

stage="$work/out"
mkdir -p "$stage"
install -m 0644 "$tree/providers/fips.so" "$stage/fips.so"
# fipsinstall runs the provider's power-on self-tests and records the module's HMAC.
"$openssl_bin" fipsinstall -module "$stage/fips.so" -out "$stage/fipsmodule.cnf" >"$work/fipsinstall.log" 2>&1 \
  || { cat "$work/fipsinstall.log" >&2; die "openssl fipsinstall failed"; }
grep -q 'INSTALL PASSED' "$work/fipsinstall.log" || { cat "$work/fipsinstall.log" >&2; die "fipsinstall did not report INSTALL PASSED"; }

dest="$cache_root/$version"
cat >"$stage/openssl.cnf" <<EOF
# Generated by tests/fips/build-provider.sh from openssl $debian_version.
# NOT a validated FIPS module: for testing FIPS code paths only.
# Use with OPENSSL_MODULES=$dest
openssl_conf = fips_init
nodejs_conf = fips_init

.include $dest/fipsmodule.cnf

[fips_init]
providers = provider_sect
alg_section = algorithm_sect

[provider_sect]
fips = fips_sect
base = base_sect

[base_sect]
activate = 1

[algorithm_sect]
default_properties = fips=yes
EOF
cat >"$stage/BUILD-INFO" <<EOF
source=openssl $debian_version ($orig)
configure=enable-fips no-shared
fipsinstall=$("$openssl_bin" version)
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
validated=no
EOF

mkdir -p "$cache_root"
rm -rf "$dest"
mv "$stage" "$dest"
# The stamp is written last, so an interrupted build is never taken for a usable one.
touch "$dest/.complete"
log "provider ready in $dest"
echo "$dest"
