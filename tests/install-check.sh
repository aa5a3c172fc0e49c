#!/bin/sh
# make installcheck: check the installed interruptible.pc, then build the
# consumer program in tests/consumer against the installed library through
# pkg-config, as an autotools project (linked shared and static), a CMake
# project and a Meson project, and run each.  A build system that is not
# installed is skipped with a line.  DESTDIR (optional) is where
# "make install" put the tree.
# usage: install-check.sh SRCDIR LIBDIR INCLUDEDIR
set -eu
srcdir=$1
libdir=$2
includedir=$3
status=0
dest=${DESTDIR:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

PKG_CONFIG_PATH="$dest$libdir/pkgconfig"
if [ -n "$dest" ]; then
	# The tree is not where its .pc says: use a copy whose absolute paths
	# point into DESTDIR.  (PKG_CONFIG_SYSROOT_DIR would prefix liburing's
	# paths too, and CMake refuses the include directory that makes.)
	mkdir "$tmp/pkgconfig"
	sed -E "s#^(prefix|exec_prefix|libdir|includedir)=/#\1=$dest/#" \
		"$dest$libdir/pkgconfig/interruptible.pc" \
		>"$tmp/pkgconfig/interruptible.pc"
	PKG_CONFIG_PATH="$tmp/pkgconfig"
fi
export PKG_CONFIG_PATH

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

cp -R "$srcdir/tests/consumer" "$tmp/src"
chmod -R u+w "$tmp/src"
(cd "$tmp/src" && autoreconf -fi >/dev/null 2>&1)

# run KIND PROGRAM: run one consumer against the installed library.
run() {
	if out=$(LD_LIBRARY_PATH="$dest$libdir" "$2"); then
		echo "PASS: $1 consumer: $out"
	else
		echo "FAIL: $1 consumer: $out"
		status=1
	fi
}

# loads KIND PROGRAM: a shared consumer loads the installed library.
loads() {
	if [ -x "$2" ] &&
	   LD_LIBRARY_PATH="$dest$libdir" ldd "$2" |
		grep -q "$dest$libdir/libinterruptible.so"; then
		echo "PASS: the $1 consumer loads the installed library"
	else
		echo "FAIL: the $1 consumer does not load $dest$libdir/libinterruptible.so"
		status=1
	fi
}

# Autotools: PKG_CHECK_MODULES, shared, and PKG_CHECK_MODULES_STATIC.
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
	run "$kind" "$tmp/$kind/consumer"
done
loads shared "$tmp/shared/consumer"
if [ -x "$tmp/static/consumer" ] &&
   ! ldd "$tmp/static/consumer" 2>&1 | grep -q libinterruptible; then
	echo "PASS: the static consumer carries the library"
else
	echo "FAIL: the static consumer is not static"
	status=1
fi

# CMake: pkg_check_modules(... IMPORTED_TARGET interruptible), linked with
# PkgConfig::INTR.
if command -v cmake >/dev/null 2>&1; then
	if cmake -S "$tmp/src" -B "$tmp/cmake" >"$tmp/cmake.log" 2>&1 &&
	   cmake --build "$tmp/cmake" >>"$tmp/cmake.log" 2>&1; then
		run cmake "$tmp/cmake/consumer"
		loads cmake "$tmp/cmake/consumer"
	else
		cat "$tmp/cmake.log"
		echo "FAIL: cmake consumer does not build"
		status=1
	fi
else
	echo "SKIP: cmake consumer: cmake is not installed"
fi

# Meson: dependency('interruptible').
if command -v meson >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1; then
	if meson setup "$tmp/meson" "$tmp/src" >"$tmp/meson.log" 2>&1 &&
	   meson compile -C "$tmp/meson" >>"$tmp/meson.log" 2>&1; then
		run meson "$tmp/meson/consumer"
		loads meson "$tmp/meson/consumer"
	else
		cat "$tmp/meson.log"
		echo "FAIL: meson consumer does not build"
		status=1
	fi
else
	echo "SKIP: meson consumer: meson or ninja is not installed"
fi
exit $status
