#!/bin/sh
# Smoke test: the cond-worker example does its five jobs, is cancelled while
# it waits on its condition variable (intr_cond_wait returns -ECANCELED
# with the mutex held), and exits 0.  The example bounds nothing itself, so
# bound it here.
set -u
out=$(timeout -k 10 60 ./examples/cond-worker)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: cond-worker exited $rc"
	exit 1
fi
fail=0
for line in \
	"worker: job 5 -> 25" \
	"jobs done: 5" \
	"intr_cond_wait returned -ECANCELED" \
	"intr_join returned -ECANCELED" \
	"mutex held on return: yes"
do
	if echo "$out" | grep -qxF "$line"; then
		echo "PASS: $line"
	else
		echo "FAIL: missing \"$line\""
		fail=1
	fi
done
[ "$fail" -eq 0 ] || exit 1
echo "PASS: cond-worker"
