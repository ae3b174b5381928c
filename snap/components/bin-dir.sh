#!/usr/bin/env bash
# Prints the cached bin dir of a built component recipe; exits 1 (message on stderr) if it has not
# been built (no .complete stamp) or its files no longer match their recorded SHA-256, and 2 if
# there is no such recipe. Usage: bin-dir.sh <name>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
name="${1:?usage: bin-dir.sh <name>}"
if [[ ! -f "$here/$name/version" ]]; then echo "bin-dir: no recipe '$name'" >&2; exit 2; fi
version="$(tr -d '[:space:]' < "$here/$name/version")"
dir="$(component_cache_root)/$name/$(cache_version "$name" "$version")"
if ! is_done "$dir"; then
  echo "bin-dir: $name $version is not built; run snap/components/$name/build.sh" >&2; exit 1
fi
# What the dev scripts and tests run as root must be what the recipe built.
verify_checksums "$dir"
echo "$dir/bin"
