#!/bin/sh
# Smoke test: the accept-server example answers three connections, then
# stops on the SIGINT the test sends once the three are served, closes its
# listening socket in a finalizer, reports "served 3 connections" and exits
# 0.  The example's own --client mode is the client, so nothing else is
# needed.  Every step is bounded.  TAP output (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
out=$(mktemp) || exit 1
pid=
trap 'rm -f "$out"' EXIT
# A failed step ends the test: the steps after it depend on it.
give_up() {
	tap_ok 1 "$*"
	tap_diag "server output:"
	sed 's/^/# /' "$out"
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	tap_done
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
[ -n "$port" ] || give_up "the server printed its port"
tap_ok 0 "listening on port $port"

for n in 1 2 3; do
	reply=$(timeout -k 10 60 ./examples/accept-server --client "$port")
	rc=$?
	[ "$rc" -eq 0 ] || give_up "client $n exited $rc"
	[ "$reply" = "hello from accept-server, connection $n" ] ||
		give_up "client $n got: $reply"
	tap_ok 0 "reply $n"
done

kill -INT "$pid"
wait "$pid"
rc=$?
pid=
sed 's/^/# /' "$out"
tap_ok "$rc" "accept-server exited 0 after SIGINT (exit $rc)"
grep -q "^stopped: run_interruptible returned -ECANCELED; listening socket closed by the finalizer$" "$out"
tap_ok $? "cancelled, listening socket closed by the finalizer"
grep -q "^served 3 connections$" "$out"
tap_ok $? "served 3 connections"
tap_done
