#!/bin/sh
# Build a small program against the installed library through pkg-config,
# linked shared and static, and run both.  Used by "make installcheck";
# DESTDIR (optional) is where "make install" put the tree.
# usage: install-check.sh SRCDIR LIBDIR
set -eu
srcdir=$1
libdir=$2
dest=${DESTDIR:-}
PKG_CONFIG_PATH="$dest$libdir/pkgconfig"
export PKG_CONFIG_PATH
if [ -n "$dest" ]; then
	PKG_CONFIG_SYSROOT_DIR=$dest
	export PKG_CONFIG_SYSROOT_DIR
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src="$srcdir/examples/read-deadline.c"
cc=${CC:-cc}

# shellcheck disable=SC2046 # pkg-config prints one flag per word
$cc -o "$tmp/shared" "$src" $(pkg-config --cflags --libs interruptible) \
	-Wl,-rpath,"$dest$libdir"
# shellcheck disable=SC2046
$cc -static -o "$tmp/static" "$src" \
	$(pkg-config --static --cflags --libs interruptible)

for kind in shared static; do
	out=$(echo hello | "$tmp/$kind")
	if [ "$out" != "read 6 bytes" ]; then
		echo "FAIL: $kind consumer printed '$out'"
		exit 1
	fi
	echo "PASS: $kind consumer"
done
if ldd "$tmp/shared" | grep -q "$dest$libdir/libinterruptible.so"; then
	echo "PASS: shared consumer uses the installed library"
else
	echo "FAIL: shared consumer does not use $dest$libdir"
	exit 1
fi
