# Sourced by the bench scripts: the checks every one of them makes before measuring anything.
#   bench_init NAME            root of the repo in $root (and the working directory); must be root
#   bench_require_built X...   dist/… or other paths must exist; component/binary must be built
#   bench_python MODULE...     $python: $PYTHON, else the dev venv, else python3; it must import MODULEs
#   bench_require_cmd CMD...   commands on PATH
bench_name=bench
bench_die() { echo "$bench_name: $*" >&2; exit 1; }

bench_init() {
  bench_name="$1"
  root=$(cd "$(dirname "${BASH_SOURCE[1]}")/../.." && pwd)
  cd "$root"
  [[ $(id -u) == 0 ]] || bench_die "run as root (network namespaces)"
}

bench_require_built() {
  local x
  for x; do
    if [[ $x == */* && $x != dist/* && $x != /* && $x != node_modules/* ]]; then
      [[ -x "$(bash snap/components/bin-dir.sh "${x%%/*}")/${x##*/}" ]] || bench_die "${x##*/} is not built; run bin/dev-setup first"
    else
      [[ -e $x ]] || bench_die "$x is missing; run bin/dev-setup first"
    fi
  done
}

bench_python() {
  python=${PYTHON:-python3}
  [[ -z ${PYTHON:-} && -x "$root/.dev/venv/bin/python" ]] && python="$root/.dev/venv/bin/python"
  local m
  for m; do "$python" -c "import $m" 2>/dev/null || bench_die "needs python3 with the $m module (PYTHON=<venv>/bin/python)"; done
}

bench_require_cmd() {
  local c
  for c; do command -v "$c" >/dev/null || bench_die "needs $c on PATH"; done
}
