#!/usr/bin/env bash
# `make bench` entry point: the connect-path benchmark of issues 2 and 6 (direct vs veer
# vs iptables DNAT, and veer with session affinity on vs off, connection per request;
# goals: veer/direct rps >= 0.98, affinity/no-affinity rps >= 0.98). The measurement itself is
# build/bin/veer-bench-connect (tests/tools/veer-bench-connect.cpp), which builds its
# own World, agent and bpffs and removes them at exit.
#
# Knobs (environment): BENCH_ROUNDS (5), BENCH_SECONDS (5 per case and round),
# BENCH_CONNECTIONS (8), BENCH_WARMUP_SECONDS (1). Exit status: non-zero only on errors,
# never on a missed performance goal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ $EUID -ne 0 ]]; then
  echo "connect_bench: needs root (network namespaces, cgroups, BPF)" >&2
  exit 1
fi
for tool in wrk iptables ip; do
  if ! command -v "$tool" >/dev/null; then
    echo "connect_bench: '$tool' not found (make deps installs it)" >&2
    exit 1
  fi
done
bin=build/bin/veer-bench-connect
if [[ ! -x $bin ]]; then
  echo "connect_bench: $bin missing; run 'make all' first" >&2
  exit 1
fi
exec "$bin"
