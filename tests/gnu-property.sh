#!/bin/sh
# Description: the system call window keeps the library's CET (IBT, SHSTK) and BTI/PAC marking.
#
# The linker marks a shared object IBT/SHSTK (x86-64) or BTI/PAC (aarch64)
# only if every object in it carries the GNU property note: one assembly
# file without it takes the marking away from the whole library.  Each
# window is assembled as the compiler's flags ask (-fcf-protection=full,
# -mbranch-protection=standard) and linked with a C object built the same
# way; the shared object must keep the marking.  The same link with the
# window assembled without the flags shows the check can fail.  And when
# this build's own objects were compiled for CET (make check-cet builds
# them so), all of them together must keep it.
set -u
. "${srcdir:-.}/tests/tap.sh"
src=${srcdir:-.}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

command -v readelf >/dev/null 2>&1 || tap_skip_all "readelf is not installed (Debian: binutils)"

# mark CC FLAGS STUB WANT NAME
mark() {
	cc=$1 flags=$2 stub=$3 want=$4 name=$5
	printf 'int intr_test_c(void) { return 0; }\n' >"$tmp/c.c"
	if ! $cc $flags -fPIC -c -o "$tmp/c.o" "$tmp/c.c" 2>"$tmp/err" ||
		! $cc $flags -c -o "$tmp/w.o" "$src/$stub" 2>>"$tmp/err"; then
		tap_skip "$name: $cc cannot build with $flags"
		return
	fi
	$cc -shared -nostdlib -o "$tmp/l.so" "$tmp/c.o" "$tmp/w.o" 2>>"$tmp/err"
	readelf -n "$tmp/l.so" 2>/dev/null | grep -q "$want"
	tap_ok $? "$name: $stub assembled with $flags keeps '$want' on the shared object"
	# Control: the window without the flags, the C object with them.
	$cc -c -o "$tmp/w.o" "$src/$stub" &&
		$cc -shared -nostdlib -o "$tmp/l.so" "$tmp/c.o" "$tmp/w.o" &&
		! readelf -n "$tmp/l.so" 2>/dev/null | grep -q "$want"
	tap_ok $? "$name: control: without the note the marking is lost"
}

case $(${CC:-cc} -dumpmachine 2>/dev/null) in
x86_64*)
	mark "${CC:-cc}" -fcf-protection=full lib/arch/x86_64/syscall.S \
		"IBT, SHSTK" x86-64 ;;
*)
	tap_skip "x86-64: not the native compiler" ;;
esac
if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
	mark aarch64-linux-gnu-gcc -mbranch-protection=standard \
		lib/arch/aarch64/syscall.S "BTI, PAC" aarch64
else
	tap_skip "aarch64: no aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu)"
fi

# This build's library, when its C objects are marked: the library's own
# objects linked alone must keep the marking.  The library itself keeps it
# only if the C library's start files (crti.o, crtn.o) carry the note
# too, which Debian 12's do not (its glibc is built without CET).
obj=$(ls lib/.libs/libinterruptible_la-signal.o 2>/dev/null)
so=lib/.libs/libinterruptible.so
if [ -n "$obj" ] && readelf -n "$obj" 2>/dev/null | grep -q -e "IBT, SHSTK" -e "BTI"; then
	want=$(readelf -n "$obj" | sed -n 's/.*feature: //p' | head -n 1)
	objs=$(ls lib/.libs/libinterruptible_la-*.o lib/arch/*/.libs/syscall.o 2>/dev/null)
	# shellcheck disable=SC2086 # one word per object
	${CC:-cc} -shared -nostdlib -o "$tmp/own.so" $objs 2>"$tmp/err" &&
		readelf -n "$tmp/own.so" | grep -q "feature: $want"
	tap_ok $? "this build's objects, linked alone, keep '$want'"
	crt=$(${CC:-cc} -print-file-name=crti.o 2>/dev/null)
	if [ -e "$so" ] && [ -e "$crt" ] &&
		readelf -n "$crt" 2>/dev/null | grep -q "feature: $want"; then
		readelf -n "$so" | grep -q "feature: $want"
		tap_ok $? "this build's library keeps '$want'"
	else
		tap_skip "this build's library: the C library's $crt has no '$want' note, so no library linked here has it"
	fi
else
	tap_skip "this build's objects are not marked (make check-cet builds marked ones)"
fi
tap_done
