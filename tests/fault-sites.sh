#!/bin/sh
# Every allocation, thread creation, fd creation and signal send in lib/
# goes through the fault injection hook (lib/fault.h), so that the sweep of
# tests/check-fault reaches them all:
# 1. a call that allocates or creates any of those, written in lib/, has
#    intr__fault() on its line or on one of the four before it (the
#    helpers intr__malloc, intr__calloc and intr__create_thread ask it);
# 2. every site of enum intr__site is named by exactly one place in lib/.
# The one exception is signal.c's tgkill, which re-raises a foreign signal
# whose default action ends the process.
srcdir=${srcdir:-.}
lib=$srcdir/lib
fail=0

raw='\b(malloc|calloc|realloc|reallocarray|strdup|strndup|aligned_alloc|posix_memalign|mmap|pthread_create|eventfd|timerfd_create|signalfd|pipe2?|socket|epoll_create1?|memfd_create|dup[23]?|fopen|open|openat|io_uring_queue_init|sigqueue|pthread_kill|tgkill|raise)[[:space:]]*\(|SYS_(rt_tgsigqueueinfo|rt_sigqueueinfo|tgkill|tkill|clone3?)\b'

bad=$(for f in "$lib"/*.c "$lib"/arch/*/*.c; do
	case "$f" in */fault.c) continue ;; esac
	grep -nE "$raw" "$f" | while IFS=: read -r line text; do
		case "$(basename "$f"):$text" in
		signal.c:*SYS_tgkill*) continue ;;
		esac
		# Comment lines.
		case "${text#"${text%%[![:space:]]*}"}" in
		'*'* | '/*'*) continue ;;
		esac
		from=$((line > 4 ? line - 4 : 1))
		sed -n "${from},${line}p" "$f" |
			grep -q 'intr__fault(' ||
			echo "FAIL: $(basename "$f"):$line does not go through the fault hook:$text"
	done
done)
if [ -n "$bad" ]; then
	echo "$bad"
	fail=1
fi

sites=$(sed -n 's/^[[:space:]]*\(INTR_SITE_[A-Z_]*\),.*/\1/p' "$lib/fault.h")
n=0
for s in $sites; do
	n=$((n + 1))
	uses=$(cat "$lib"/*.c | grep -v '^\s*\[INTR_SITE' | grep -o "\b$s\b" | wc -l)
	if [ "$uses" -ne 1 ]; then
		echo "FAIL: $s is named by $uses places in lib/, want 1"
		fail=1
	fi
done
if [ "$n" -lt 1 ]; then
	echo "FAIL: no site found in lib/fault.h"
	fail=1
fi

if [ "$fail" -eq 0 ]; then
	echo "PASS: $n fault injection sites; every allocation, thread, fd and signal send of lib/ goes through one"
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit "$fail"
