#!/usr/bin/env bash
# `make bench` entry point: load + validate + compile at scale (issue 3). The measurement
# is build/bin/veer-bench-compile (tests/tools/veer-bench-compile.cpp): it generates
# 10,000 Services x 3 subsets x 4 rules of YAML into a temporary directory once, then runs
# the real pipeline in a fresh child process per run and reports medians of wall time and
# peak RSS against the goal (under 1 s, under 64 MiB), plus a per-phase breakdown.
#
# Knobs (environment): BENCH_COMPILE_SERVICES (10000), BENCH_COMPILE_RUNS (5),
# BENCH_COMPILE_PODS (pods per version, 1; 2 or more gives every version a Maglev ring).
# Exit status: non-zero only on errors, never on a missed performance goal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bin=build/bin/veer-bench-compile
if [[ ! -x $bin ]]; then
  echo "compile_bench: $bin missing; run 'make all' first" >&2
  exit 1
fi
exec "$bin" --services "${BENCH_COMPILE_SERVICES:-10000}" --runs "${BENCH_COMPILE_RUNS:-5}" \
  --pods-per-version "${BENCH_COMPILE_PODS:-1}"
