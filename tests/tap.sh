# SPDX-License-Identifier: MIT
# Test Anything Protocol output for the shell tests; source it, then:
#   tap_ok STATUS "what"     one case: ok when STATUS is 0
#   tap_skip "why"           one case skipped
#   tap_skip_all "why"       the whole test skipped (exits 0)
#   tap_diag "..."           a comment line
#   tap_done                 prints the plan and exits 1 if a case failed
tap_count=0
tap_failures=0
tap_skips=0

tap_ok() {
	tap_count=$((tap_count + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_count - $2"
	else
		tap_failures=$((tap_failures + 1))
		echo "not ok $tap_count - $2"
	fi
}

tap_skip() {
	tap_count=$((tap_count + 1))
	tap_skips=$((tap_skips + 1))
	echo "ok $tap_count # SKIP $1"
}

tap_skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

tap_diag() {
	echo "# $*"
}

tap_done() {
	echo "1..$tap_count"
	echo "# $((tap_count - tap_failures - tap_skips)) passed, $tap_failures failed, $tap_skips skipped"
	[ "$tap_failures" -eq 0 ]
	exit $?
}
