#!/usr/bin/env bash
# Runs every test suite given (each a command: a GoogleTest binary, or the VM
# harness whose GoogleTest lines come prefixed with "[vm] "), keeps going after
# a failure, and ends with one summary line "tests: N passed, N failed" that
# CI reads ("tests: N passed, N failed, N skipped"). Exit 1 if any suite failed.
set -uo pipefail

passed=0 failed=0 skipped=0 broken=()
for cmd in "$@"; do
	echo "=== $cmd"
	out=$(mktemp)
	bash -c "$cmd" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(sed -n 's/^\(\[vm\] \)\?\[  PASSED  \] \([0-9]*\) tests\?\..*/\2/p' "$out" | tail -1)
	f=$(sed -n 's/^\(\[vm\] \)\?\[  FAILED  \] \([0-9]*\) tests\?, listed below:.*/\2/p' "$out" | tail -1)
	s=$(sed -n 's/^\(\[vm\] \)\?\[  SKIPPED \] \([0-9]*\) tests\?, listed below:.*/\2/p' "$out" | tail -1)
	rm -f "$out"
	passed=$((passed + ${p:-0}))
	skipped=$((skipped + ${s:-0}))
	failed=$((failed + ${f:-0}))
	if ((rc != 0)); then
		broken+=("$cmd")
		# A crash or a setup failure counts once even if GoogleTest never summarised.
		[[ -z "$f" ]] && failed=$((failed + 1))
	fi
done
((${#broken[@]})) && printf 'failing suite: %s\n' "${broken[@]}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
((${#broken[@]} == 0))
