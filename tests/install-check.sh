#!/bin/sh
# make installcheck: check the installed interruptible.pc, build the
# autotools consumer project in tests/consumer against the installed
# library through pkg-config, linked shared and static, and run both.  DESTDIR (optional) is where "make install" put the
# tree.
# usage: install-check.sh SRCDIR LIBDIR INCLUDEDIR
set -eu
srcdir=$1
libdir=$2
includedir=$3
status=0
dest=${DESTDIR:-}
PKG_CONFIG_PATH="$dest$libdir/pkgconfig"
export PKG_CONFIG_PATH
if [ -n "$dest" ]; then
	PKG_CONFIG_SYSROOT_DIR=$dest
	export PKG_CONFIG_SYSROOT_DIR
fi
# With io_uring support, the .pc must carry configure's liburing version
# bound, so that a static link finds the liburing the library needs.
if [ -e "$dest$includedir/interruptible/uring.h" ]; then
	req=$(pkg-config --print-requires-private interruptible)
	case "$req" in
	"liburing >= "[0-9]*)
		echo "PASS: interruptible.pc: Requires.private: $req" ;;
	*)
		echo "FAIL: interruptible.pc: Requires.private: \"$req\"," \
			"not liburing with a version bound"
		status=1 ;;
	esac
	libs=$(pkg-config --static --libs interruptible)
	case " $libs " in
	*" -luring "*)
		echo "PASS: pkg-config --static --libs: $libs" ;;
	*)
		echo "FAIL: pkg-config --static --libs lacks -luring: $libs"
		status=1 ;;
	esac
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -R "$srcdir/tests/consumer" "$tmp/src"
chmod -R u+w "$tmp/src"
(cd "$tmp/src" && autoreconf -fi >/dev/null 2>&1)

for kind in shared static; do
	mkdir "$tmp/$kind"
	opt=""
	[ "$kind" = static ] && opt=--enable-static-intr
	if ! (cd "$tmp/$kind" && "$tmp/src/configure" $opt >/dev/null &&
		make >/dev/null); then
		echo "FAIL: $kind consumer does not build"
		status=1
		continue
	fi
	if out=$(LD_LIBRARY_PATH="$dest$libdir" "$tmp/$kind/consumer"); then
		echo "PASS: $kind consumer: $out"
	else
		echo "FAIL: $kind consumer: $out"
		status=1
	fi
done
if [ -x "$tmp/shared/consumer" ] &&
   LD_LIBRARY_PATH="$dest$libdir" ldd "$tmp/shared/consumer" |
	grep -q "$dest$libdir/libinterruptible.so"; then
	echo "PASS: the shared consumer loads the installed library"
else
	echo "FAIL: the shared consumer does not load $dest$libdir/libinterruptible.so"
	status=1
fi
if [ -x "$tmp/static/consumer" ] &&
   ! ldd "$tmp/static/consumer" 2>&1 | grep -q libinterruptible; then
	echo "PASS: the static consumer carries the library"
else
	echo "FAIL: the static consumer is not static"
	status=1
fi
exit $status
