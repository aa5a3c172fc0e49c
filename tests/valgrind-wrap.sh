#!/bin/sh
# Run one test under a valgrind tool: the LOG_COMPILER of make
# check-valgrind and make check-helgrind.
#   valgrind-wrap.sh TOOL TEST [ARGS...]
# TOOL is memcheck or helgrind.  A test that is not an ELF program (the
# shell smoke tests) runs as it is.  Valgrind follows fork() by itself, so
# Check's forked tests run under it (CK_FORK stays on: every test keeps its
# own process, and a report in one fails that test through
# --error-exitcode).  --trace-children stays off: the only program a test
# executes is /bin/true, none of ours.  --fair-sched: the tests busy-wait
# for other threads, and valgrind runs one thread at a time; without a fair
# hand-off of its lock a spinning thread can starve the one it waits for.
set -u
tool=$1
shift
if ! od -An -tx1 -N4 "$1" 2>/dev/null | grep -q '7f 45 4c 46'; then
	exec "$@"
fi
supp=$(dirname "$0")/valgrind.supp
case $tool in
memcheck)
	exec valgrind --tool=memcheck --fair-sched=yes --error-exitcode=99 \
		--leak-check=full \
		--errors-for-leak-kinds=definite,indirect \
		--show-leak-kinds=definite,indirect \
		--suppressions="$supp" --quiet "$@"
	;;
helgrind)
	exec valgrind --tool=helgrind --fair-sched=yes --error-exitcode=99 \
		--suppressions="$supp" --quiet "$@"
	;;
*)
	echo "valgrind-wrap.sh: unknown tool $tool" >&2
	exit 99
	;;
esac
