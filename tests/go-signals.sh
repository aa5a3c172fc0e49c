#!/bin/sh
# Description: the real Go runtime (cgo) survives process-directed signals once the library's handler is installed.
#
# tests/go/ is a cgo program that makes one call, so the library installs
# its handler over the Go runtime's, then sends itself a few hundred
# process-directed signals while goroutines spin.  The library's handler,
# and the Go handler it chains, must run on the thread's signal stack, or
# the runtime aborts.  Both with the default SIGUSR1 and with a real-time
# INTR_SIGNAL; three runs each.  Built offline, in the build tree, against
# the shared library just built.  Skipped only when go is not installed.
set -u
. "${srcdir:-.}/tests/tap.sh"

command -v go >/dev/null 2>&1 ||
	tap_skip_all "go is not installed (Debian: golang-go)"
[ -e lib/.libs/libinterruptible.so ] ||
	tap_skip_all "no shared library in this build (the cgo program links it)"

top=$(pwd)
src=$(cd "${srcdir:-.}" && pwd)
work=$top/tests/go-build
rm -rf "$work/src"
mkdir -p "$work/src" "$work/cache" "$work/path" || exit 1
cp "$src/tests/go/go.mod" "$src/tests/go/main.go" "$work/src/" || exit 1
chmod u+w "$work/src"/*

if ! (cd "$work/src" &&
	GOCACHE="$work/cache" GOPATH="$work/path" GOENV=off GOFLAGS= \
	GOPROXY=off GO111MODULE=on CGO_ENABLED=1 \
	CGO_CFLAGS="-I$src/include -I$top/include" \
	CGO_LDFLAGS="-L$top/lib/.libs -linterruptible" \
	timeout 300 go build -o "$work/gosignals" . >"$work/build.log" 2>&1); then
	tap_ok 1 "the cgo program builds"
	sed 's/^/# /' "$work/build.log"
	tap_done
fi
tap_ok 0 "the cgo program builds ($(go version | cut -d' ' -f3))"

rtmin=$(kill -l RTMIN 2>/dev/null || echo 34)
for spec in "USR1:10:" "RTMIN+3:$((rtmin + 3)):RTMIN+3"; do
	name=${spec%%:*}
	rest=${spec#*:}
	signo=${rest%%:*}
	env=${rest#*:}
	for run in 1 2 3; do
		if [ -n "$env" ]; then
			out=$(INTR_SIGNAL=$env LD_LIBRARY_PATH="$top/lib/.libs" \
				timeout 60 "$work/gosignals" "$signo" 300 2>&1)
		else
			out=$(env -u INTR_SIGNAL LD_LIBRARY_PATH="$top/lib/.libs" \
				timeout 60 "$work/gosignals" "$signo" 300 2>&1)
		fi
		rc=$?
		tap_ok $rc "SIG$name run $run: exit $rc: $(echo "$out" | grep -m1 -e 'signals sent' -e 'fatal error' -e 'returned' -e 'signal .* received' || echo "$out" | tail -n 1)"
		[ "$rc" -eq 0 ] || echo "$out" | head -n 5 | sed 's/^/# /'
	done
done
tap_done
