#!/usr/bin/env bash
# Checks (or with --fix, applies) clang-format on every C++ and BPF C source in
# git: .clang-format at the top for C++, bpf/.clang-format for the BPF programs
# and include/veer (shared with them). Exit 1 naming each file that differs.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
[[ "${1:-}" == "--fix" ]] && fix=1
bad=0
while IFS= read -r f; do
	style=file
	case "$f" in
	bpf/* | include/veer/* | tests/bpf/*) style="file:bpf/.clang-format" ;;
	esac
	if ((fix)); then
		clang-format -i --style="$style" "$f"
	elif ! clang-format --style="$style" --dry-run -Werror "$f" 2>/dev/null; then
		echo "check-format: $f differs from its .clang-format (run scripts/check-format.sh --fix)" >&2
		bad=1
	fi
done < <(git ls-files '*.cpp' '*.h' '*.c')
((bad == 0)) && echo "check-format: every source matches its .clang-format"
exit $bad
