#!/usr/bin/env bash
# `npm start` to a Ready node with its default features ready, on a fresh test-bed node
# (tests/bench/npm_start.py says how). Usage: sudo tests/bench/npm-start.sh   RUNS=1 SETTLE=10
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,3p' "$0"; exit 0 ;; esac
bench_init npm-start
bench_python yaml
bench_require_cmd npm nsenter
exec "$python" "$root/tests/bench/npm_start.py"
