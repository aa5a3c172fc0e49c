#!/bin/sh
# Every allocation, thread creation, fd creation and signal send in lib/
# goes through the fault injection hook (lib/fault.h), so that the sweep of
# tests/check-fault reaches them all:
# 1. a call that allocates or creates any of those, written in lib/, has
#    intr__fault() on its line or on one of the four before it (the
#    helpers intr__malloc, intr__calloc and intr__create_thread ask it);
# 2. every site of enum intr__site is named by exactly one place in lib/.
# The one exception is signal.c's tgkill, which re-raises a foreign signal
# whose default action ends the process.  TAP output (tests/tap.sh).
srcdir=${srcdir:-.}
. "$srcdir/tests/tap.sh"
lib=$srcdir/lib

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
			echo "$(basename "$f"):$line does not go through the fault hook:$text"
	done
done)
[ -z "$bad" ]
tap_ok $? "every allocation, thread, fd and signal send of lib/ goes through the fault hook"
[ -z "$bad" ] || echo "$bad" | sed 's/^/# /'

sites=$(sed -n 's/^[[:space:]]*\(INTR_SITE_[A-Z_]*\),.*/\1/p' "$lib/fault.h")
n=0
for s in $sites; do
	n=$((n + 1))
	uses=$(cat "$lib"/*.c | grep -v '^\s*\[INTR_SITE' | grep -o "\b$s\b" | wc -l)
	[ "$uses" -eq 1 ]
	tap_ok $? "$s is named by one place in lib/ ($uses)"
done
[ "$n" -ge 1 ]
tap_ok $? "$n fault injection sites in lib/fault.h"
tap_done
