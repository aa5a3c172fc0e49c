#!/bin/sh
# Smoke test: the nested-calls example exits 0; a deadline on a child token
# stops one nested call with -ETIMEDOUT and not the parent; one cancel of
# the root token stops the parent and both of its nested calls with
# -ECANCELED; the nested calls' finalizers run before the parent's, and the
# parent's last registered first.  Bounded here: a lost cancel would leave
# the nested calls blocked for 5 s each.
set -u
out=$(timeout -k 10 60 ./examples/nested-calls)
rc=$?
echo "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: nested-calls exited $rc"
	exit 1
fi
fail=0
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
	if echo "$out" | grep -qxF "$line"; then
		echo "PASS: $line"
	else
		echo "FAIL: missing \"$line\""
		fail=1
	fi
done
# The order as printed, independently of the example's own check.
order=$(echo "$out" | sed -n 's/^finalizer: //p' | tr '\n' ,)
case "$order" in
"sleeper (deadline),reader,sleeper,parent: close the pipe,parent: free the deadline token," | \
"sleeper (deadline),sleeper,reader,parent: close the pipe,parent: free the deadline token,")
	echo "PASS: finalizers in order: $order" ;;
*)
	echo "FAIL: finalizers out of order: $order"
	fail=1 ;;
esac
[ "$fail" -eq 0 ] || exit 1
echo "PASS: nested-calls"
