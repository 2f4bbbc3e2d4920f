#!/usr/bin/env bash
# Installs everything veer needs to build, test, benchmark and demo on Debian 12;
# with --build, only what building the binaries needs (the Containerfile's build stage);
# or, given package names, just those (vm-tests/install-deps.sh does that).
# Idempotent: does nothing when all packages are already present.
set -euo pipefail
cd "$(dirname "$0")/.."

build_packages=(
	make clang llvm clang-format gcc g++ pkg-config libelf-dev zlib1g-dev
	libbpf-dev bpftool linux-libc-dev
	libyaml-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
	libre2-dev libnl-3-dev libnl-route-3-dev node-llhttp libmicrohttpd-dev
	libcurl4-openssl-dev libssl-dev libgtest-dev libmimalloc-dev liburing-dev
)
default_packages=(
	"${build_packages[@]}"
	# test world, benchmarks, the test API server
	iproute2 iptables curl wrk procps prometheus python3 python3-yaml openssl
	# the image test (tests/deploy/run.sh): an image from scratch, run with chroot isolation
	buildah
)
# kubectl: Debian's kubernetes-client unless a kubectl is already installed (another
# package's /usr/bin/kubectl would conflict with it).
if ! command -v kubectl >/dev/null; then
	default_packages+=(kubernetes-client)
fi
all=false
if [[ "${1:-}" == --build ]]; then
	packages=("${build_packages[@]}")
elif (($#)); then
	packages=("$@")
else
	packages=("${default_packages[@]}")
	all=true
fi
# The manifests' schema check runs on Node.js. The machine kind ships Node.js 20 and
# its npm outside Debian's packages; Debian's own are the fallback where there is none.
if $all && ! command -v npm >/dev/null; then
	packages+=(nodejs npm)
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

# The schema validator and its YAML reader, at the versions pinned in
# tests/deploy/package-lock.json, into tests/deploy/node_modules: nothing global.
# Again whenever the lock file changes (the stamp is a copy of the lock installed).
stamp=tests/deploy/node_modules/.veer-installed-lock
if $all && ! cmp -s tests/deploy/package-lock.json "$stamp"; then
	echo "install-deps: npm ci in tests/deploy" >&2
	npm ci --prefix tests/deploy --no-audit --no-fund --loglevel=error >/dev/null
	cp tests/deploy/package-lock.json "$stamp"
fi
