#!/bin/sh
# Description: lib/ is layered: tools/layers.sh passes on this build's
# objects, and fails on a layout where a lower file calls a higher one
# and where two files of one layer call each other.  TAP (tests/tap.sh).
set -u
. "${srcdir:-.}/tests/tap.sh"
tool="${srcdir:-.}/tools/layers.sh"
lib=./lib
obj=$(ls $lib/.libs/*.o $lib/*.o 2>/dev/null | head -n 1)
[ -n "$obj" ] || tap_skip_all "no objects of the library in $lib"
nm "$obj" >/dev/null 2>&1 || tap_skip_all "nm cannot read this build's objects"

out=$(sh "$tool" "$lib" 2>&1)
rc=$?
[ $rc -eq 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
tap_ok "$([ $rc -eq 0 ] && echo 0 || echo 1)" "the library's files call only down their layers"

# call.c uses signal.c: with call put below signal, that is an edge up.
out=$(LAYERS_LIST='0 config lock fault self call
1 signal handles thread timer pool
2 token context wake slot
4 service
5 lifecycle
6 task here cancel ctx syscall uring uring-none resolve point' \
	LAYERS_KNOWN='' sh "$tool" "$lib" 2>&1)
rc=$?
case $out in *"call (layer 0) uses signal (layer 1)"*) up=1 ;; *) up=0 ;; esac
tap_ok "$([ $rc -ne 0 ] && [ $up -eq 1 ] && echo 0 || echo 1)" \
	"an edge up the layers fails, and is named"

# Two files of one layer that call each other: a cycle.
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
printf 'int two(void);\nint one(void) { return two(); }\n' >"$dir/one.c"
printf 'int one(void);\nint two(void) { return one(); }\n' >"$dir/two.c"
if ${CC:-cc} -c -o "$dir/one.o" "$dir/one.c" &&
   ${CC:-cc} -c -o "$dir/two.o" "$dir/two.c"; then
	out=$(LAYERS_LIST='0 one two' LAYERS_KNOWN='' sh "$tool" "$dir" 2>&1)
	rc=$?
	case $out in *"is on a cycle"*) cyc=1 ;; *) cyc=0 ;; esac
	tap_ok "$([ $rc -ne 0 ] && [ $cyc -eq 1 ] && echo 0 || echo 1)" \
		"a cycle within a layer fails, and is named"
else
	tap_skip "no C compiler to make a cycle with"
fi

# A known edge that is gone must come off the list.
out=$(LAYERS_KNOWN='lock call' sh "$tool" "$lib" 2>&1)
rc=$?
case $out in *"lock -> call is listed as known"*) st=1 ;; *) st=0 ;; esac
tap_ok "$([ $rc -ne 0 ] && [ $st -eq 1 ] && echo 0 || echo 1)" \
	"a known edge that does not exist fails"
tap_done
