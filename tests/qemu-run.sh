#!/bin/sh
# Run one test program of a cross build under qemu-user: the LOG_COMPILER
# of make check-aarch64.
#   qemu-run.sh TEST [ARGS...]
# QEMU (default qemu-aarch64) runs it; the programs are linked statically,
# so no loader runs in the guest and nothing of the host's own libraries
# for that architecture (its /etc/ld.so.cache included) can be used; the
# prefix qemu searches is an empty directory all the same.  The run is
# bounded by SIGKILL (qemu-user does not stop on SIGTERM while the guest
# runs): QEMU_RUN_BOUND seconds, 600 by default.
# The programs listed in QEMU_SKIP (names, space-separated) fork while
# threads run, which qemu-user does not survive (it aborts in the child),
# or exec themselves, which the host cannot: they are reported as skipped,
# with that reason.  The test cases that do so in the other suites are
# left out through CK_EXCLUDE_TAGS, which the run says.  INTR_TEST_QEMU=1
# tells a test it runs there (qemu-user keeps the guest's two highest
# real-time signals for itself and never delivers them).
set -u
name=$(basename "$1")
for s in ${QEMU_SKIP:-}; do
	if [ "$s" = "$name" ]; then
		echo "1..0 # SKIP under qemu-user: it forks while threads run, or execs itself"
		exit 0
	fi
done
[ -n "${CK_EXCLUDE_TAGS:-}" ] &&
	echo "# under qemu-user: test cases tagged $CK_EXCLUDE_TAGS left out"
prefix=$(mktemp -d) || exit 1
trap 'rmdir "$prefix"' EXIT
timeout -s KILL "${QEMU_RUN_BOUND:-600}" \
	env QEMU_LD_PREFIX="$prefix" INTR_TEST_QEMU=1 \
	"${QEMU:-qemu-aarch64}" "$@"
