#!/bin/sh
# Smoke test: the io_uring poll loop, once it polls, stops on SIGINT, tears
# its ring down and exits 0.  The example bounds nothing itself, so bound
# it here: the SIGINT goes through timeout, which passes it on.
set -u
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT
timeout -k 10 60 ./examples/uring-poll >"$out" &
pid=$!
i=0
while [ "$i" -lt 300 ] && ! grep -q '^polling the ring' "$out"; do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
	echo "FAIL: uring-poll exited $rc"
	exit 1
fi
case "$(cat "$out")" in
*"polling the ring"*"ring torn down by the finalizer"*"cancel latency:"*)
	echo "PASS: uring-poll" ;;
*) echo "FAIL: unexpected output"; exit 1 ;;
esac
