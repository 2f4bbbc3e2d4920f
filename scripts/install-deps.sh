#!/usr/bin/env bash
# Installs everything veer needs to build, test, benchmark and demo on Debian 12,
# or, given package names, just those (vm-tests/install-deps.sh does that).
# Idempotent: does nothing when all packages are already present.
set -euo pipefail

default_packages=(
	# build
	make clang llvm gcc g++ pkg-config libelf-dev zlib1g-dev
	libbpf-dev bpftool linux-libc-dev
	libyaml-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
	libre2-dev libnl-3-dev libnl-route-3-dev node-llhttp libmicrohttpd-dev libcurl4-openssl-dev
	libgtest-dev libmimalloc-dev liburing-dev
	# test world and benchmarks
	iproute2 iptables curl wrk procps prometheus
)
if (($#)); then
	packages=("$@")
else
	packages=("${default_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
