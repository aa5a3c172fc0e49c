#!/bin/sh
# Smoke test: the accept-server example answers three connections, then
# stops on the SIGINT the test sends once the three are served, closes its
# listening socket in a finalizer, reports "served 3 connections" and exits
# 0.  The example's own --client mode is the client, so nothing else is
# needed.  Every step is bounded.
set -u
out=$(mktemp) || exit 1
pid=
fail() {
	echo "FAIL: $*"
	echo "--- server output:"
	cat "$out"
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -f "$out"
	exit 1
}

# timeout passes the SIGINT on to the server.
timeout -k 10 60 ./examples/accept-server >"$out" &
pid=$!

# The server prints "listening on 127.0.0.1:PORT; ..." once it listens.
port=
i=0
while [ "$i" -lt 300 ]; do
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\);.*/\1/p' "$out")
	[ -n "$port" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
[ -n "$port" ] || fail "no port printed"
echo "PASS: listening on port $port"

for n in 1 2 3; do
	reply=$(timeout -k 10 60 ./examples/accept-server --client "$port")
	rc=$?
	[ "$rc" -eq 0 ] || fail "client $n exited $rc"
	case "$reply" in
	"hello from accept-server, connection $n") echo "PASS: reply $n" ;;
	*) fail "client $n got: $reply" ;;
	esac
done

kill -INT "$pid"
wait "$pid"
rc=$?
pid=
cat "$out"
[ "$rc" -eq 0 ] || fail "accept-server exited $rc"
grep -q "^stopped: run_interruptible returned -ECANCELED; listening socket closed by the finalizer$" "$out" ||
	fail "no cancel or no finalizer"
grep -q "^served 3 connections$" "$out" || fail "not \"served 3 connections\""
rm -f "$out"
echo "PASS: accept-server"
