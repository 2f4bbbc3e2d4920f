#!/usr/bin/env bash
# Renders a kustomization of deploy/ into one manifest: with no arguments deploy/ into
# deploy/veer.yaml (run it after editing deploy/base or deploy/kustomization.yaml; the
# test suite checks that veer.yaml is current), or DIR into OUT.
#
# The renderer is kustomize as built into kubectl. It needs kustomize v4 or later
# (kubectl >= 1.21) for a directory under `resources:` and `patches:`; Debian 12's
# kubernetes-client is kubectl 1.20 with kustomize v2.0.3, which has neither, so it is
# the kubectl that this machine kind ships that renders.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-deploy}
out=${2:-deploy/veer.yaml}

if ! command -v kubectl >/dev/null; then
	echo "render-deploy: kubectl not found (kustomize v4+ is needed to render $dir)" >&2
	exit 1
fi
version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')
if [[ -z "$version" || "$version" -lt 4 ]]; then
	echo "render-deploy: $(command -v kubectl) has kustomize ${version:-unknown}; v4 or later is needed" >&2
	exit 1
fi

tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
	echo "# Rendered from $dir/kustomization.yaml by scripts/render-deploy.sh: edit those files, not this one."
	kubectl kustomize "$dir"
} >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
