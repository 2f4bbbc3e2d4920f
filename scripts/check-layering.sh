#!/usr/bin/env bash
# The userspace layers, lowest first. A directory includes only its own headers
# and those of lower layers; two directories of one layer are peers and never
# include each other. Exit 1 naming every include that goes up or sideways.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A layer=(
	[common]=0
	[config]=1
	[compiler]=2 [k8s]=2
	[datapath]=3 [proxy]=3
	[reconcile]=4
	[agent]=5 [veerctl]=5 [veer-proxy]=5
)

bad=0
for dir in userspace/*/; do
	d=$(basename "$dir")
	if [[ -z "${layer[$d]+x}" ]]; then
		echo "check-layering: userspace/$d has no layer: add it to scripts/check-layering.sh" >&2
		bad=1
		continue
	fi
	while IFS=: read -r file line inc; do
		to=${inc%%/*}
		[[ "$to" == "$d" || -z "${layer[$to]+x}" ]] && continue
		if ((layer[$to] >= layer[$d])); then
			echo "$file:$line: userspace/$d (layer ${layer[$d]}) includes $inc (layer ${layer[$to]})" >&2
			bad=1
		fi
	done < <(grep -Hno '^#include "[^"]*"' -r "$dir" | sed 's/#include "\(.*\)"/\1/')
done
exit $bad
