#!/bin/sh
# Smoke test: the nested-calls example exits 0; a deadline on a child token
# stops one nested call with -ETIMEDOUT and not the parent; one cancel of
# the root token stops the parent and both of its nested calls with
# -ECANCELED; the nested calls' finalizers run before the parent's, and the
# parent's last registered first.  Bounded here: a lost cancel would leave
# the nested calls blocked for 5 s each.  TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(timeout -k 10 60 ./examples/nested-calls)
rc=$?
echo "$out" | sed 's/^/# /'
tap_ok "$rc" "nested-calls exited 0 (exit $rc)"
for line in \
	"sleeper (deadline): intr_sleep returned -ETIMEDOUT" \
	"parent: run_interruptible(sleeper, 100 ms deadline) returned -ETIMEDOUT" \
	"parent: intr_reason after the deadline returned 0" \
	"reader: intr_read returned -ECANCELED" \
	"sleeper: intr_sleep returned -ECANCELED" \
	"parent: run_interruptible(sleeper) returned -ECANCELED" \
	"parent: intr_join(reader) returned -ECANCELED" \
	"parent: intr_reason returned -ECANCELED" \
	"main: intr_join(parent) returned -ECANCELED" \
	"finalizer order: ok"
do
	echo "$out" | grep -qxF "$line"
	tap_ok $? "$line"
done
# The order as printed, independently of the example's own check.
order=$(echo "$out" | sed -n 's/^finalizer: //p' | tr '\n' ,)
case "$order" in
"sleeper (deadline),reader,sleeper,parent: close the pipe,parent: free the deadline token," | \
"sleeper (deadline),sleeper,reader,parent: close the pipe,parent: free the deadline token,")
	tap_ok 0 "finalizers in order: $order" ;;
*)
	tap_ok 1 "finalizers in order: $order" ;;
esac
tap_done
