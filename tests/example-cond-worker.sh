#!/bin/sh
# Smoke test: the cond-worker example does its five jobs, is cancelled while
# it waits on its condition variable (intr_cond_wait returns -ECANCELED
# with the mutex held), and exits 0.  The example bounds nothing itself, so
# bound it here.  TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(timeout -k 10 60 ./examples/cond-worker)
rc=$?
echo "$out" | sed 's/^/# /'
tap_ok "$rc" "cond-worker exited 0 (exit $rc)"
for line in \
	"worker: job 5 -> 25" \
	"jobs done: 5" \
	"intr_cond_wait returned -ECANCELED" \
	"intr_join returned -ECANCELED" \
	"mutex held on return: yes"
do
	echo "$out" | grep -qxF "$line"
	tap_ok $? "$line"
done
tap_done
