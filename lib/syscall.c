/* SPDX-License-Identifier: MIT */
/*
 * intr_syscall() and the blocking wrappers built on it.
 *
 * Every system call goes through intr__sc_call (lib/arch/<arch>/), which
 * checks the call token's reason and makes the system call inside a window
 * that the signal handler recognises:
 *   - cancelled before the window: the flag check takes the cancel exit;
 *   - the signal lands inside the window, before the kernel was entered,
 *     and the call is cancelled: the handler moves the PC to the cancel
 *     exit;
 *   - the signal lands while the kernel blocks: -EINTR at the window's end;
 *   - the system call completed first: its result is returned as is.
 * The window says whether it left by the cancel exit, which it takes only
 * when the reason is set (the canceller stores it before it signals); then
 * the wrapper returns the reason.  -EINTR is the reason too if it is set,
 * else another signal's, and the system call is made again.  Nothing else
 * is the cancel's: a signal nobody cancelled for (another process may send
 * the interrupt signal too, with any details it likes) is at worst an
 * EINTR that is retried, and the kernel's own -ECANCELED is a result.
 */
#include "config.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "arch.h"
#include "internal.h"

#if INTR_HAVE_WINDOW
/* Leave the window: if the handler blocked the signal in a context it
 * returned to (signal.c, act), and that context was this wrapper's own
 * code rather than another handler's, the body's mask must let the
 * signal in again.  Once the signal is unblocked the one the handler
 * queued is delivered, and does nothing: the flag is down. */
static void window_leave(void)
{
	sigset_t set;

	/* The handler runs on this thread: a compiler barrier orders it. */
	atomic_signal_fence(memory_order_seq_cst);
	intr__sc_active = 0;
	atomic_signal_fence(memory_order_seq_cst);
	if (intr__sc_deferred) {
		intr__sc_deferred = 0;
		sigemptyset(&set);
		sigaddset(&set, intr__signo);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
}
#endif

/* One pass through the window, with the bookkeeping the handler needs
 * around it (intr__sc_active, window_leave). */
static struct intr__sc_ret pass(struct intr_task *t, long nr, long a1,
				long a2, long a3, long a4, long a5, long a6)
{
	struct intr__sc_ret r;

	/* Also without an assembly window: the libc points (point.c) know
	 * by it that a handler runs over one of these passes. */
	intr__sc_active = 1;
	atomic_signal_fence(memory_order_seq_cst);
	r = intr__sc_call(&t->tok.reason, nr, a1, a2, a3, a4, a5, a6);
#if INTR_HAVE_WINDOW
	window_leave();
#else
	atomic_signal_fence(memory_order_seq_cst);
	intr__sc_active = 0;
#endif
	return r;
}

/* The pass of every wait the signal ends: the wrappers' (cp_once) and
 * libinterruptible-libc's points (point.c). */
struct intr__sc_ret intr__sc_pass(struct intr_task *t, long nr, long a1,
				  long a2, long a3, long a4, long a5, long a6)
{
	intr__slot_signal(t);
	return pass(t, nr, a1, a2, a3, a4, a5, a6);
}

/* One pass: the system call's result, the reason if the call is
 * cancelled, or -EINTR if another signal interrupted it. */
static long cp_once(struct intr_task *t, long nr, long a1, long a2, long a3,
		    long a4, long a5, long a6)
{
	struct intr__sc_ret r = intr__sc_pass(t, nr, a1, a2, a3, a4, a5, a6);

	if (r.exited || r.ret == -EINTR) {
		/* The exit is taken only with the reason set. */
		if (atomic_load(&t->tok.reason))
			return intr__acknowledge(t);
		return -EINTR;	/* another signal's: retried */
	}
	return r.ret;
}

/* The same, restarted after other signals. */
static long cp_call(struct intr_task *t, long nr, long a1, long a2, long a3,
		    long a4, long a5, long a6)
{
	long r;

	do
		r = cp_once(t, nr, a1, a2, a3, a4, a5, a6);
	while (r == -EINTR);
	return r;
}

INTR_API long intr_syscall(intr_ctx *ctx, long nr, ...)
{
	struct intr_task *t = intr__body_of(ctx);
	long a[6];
	va_list ap;
	int i;

	if (!t)
		return -EINVAL;
	va_start(ap, nr);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return cp_call(t, nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

INTR_API ssize_t intr_read(intr_ctx *ctx, int fd, void *buf, size_t n)
{
	struct intr_task *t = intr__body_of(ctx);

	if (!t)
		return -EINVAL;
	return cp_call(t, SYS_read, fd, (long)buf, (long)n, 0, 0, 0);
}

INTR_API ssize_t intr_write(intr_ctx *ctx, int fd, const void *buf, size_t n)
{
	struct intr_task *t = intr__body_of(ctx);

	if (!t)
		return -EINVAL;
	return cp_call(t, SYS_write, fd, (long)buf, (long)n, 0, 0, 0);
}

INTR_API int intr_accept(intr_ctx *ctx, int fd, struct sockaddr *addr,
			 socklen_t *len)
{
	struct intr_task *t = intr__body_of(ctx);

	if (!t)
		return -EINVAL;
	return (int)cp_call(t, SYS_accept4, fd, (long)addr, (long)len, 0, 0, 0);
}

static struct timespec ns_to_ts(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u),
	};

	return ts;
}

/* A sleep on an absolute deadline, so restarts after other signals do not
 * stretch it: the interrupt signal's way. */
static int sleep_signal(struct intr_task *t, const struct timespec *until)
{
	return (int)cp_call(t, SYS_clock_nanosleep, CLOCK_MONOTONIC,
			    TIMER_ABSTIME, (long)until, 0, 0, 0);
}

/* The body has blocked the interrupt signal itself, to hold its cancel
 * off (interruptible(7), Signal masks): a wait of the body must then not
 * end on the cancel either.  The mask is the thread's own; only this
 * thread changes it, and nothing else can tell it without asking. */
static bool cancel_held(void)
{
	sigset_t cur;

	return !pthread_sigmask(SIG_BLOCK, NULL, &cur) &&
	       sigismember(&cur, intr__signo) == 1;
}

/*
 * The same without the signal: a futex wait on the call's own reason word,
 * value 0, until the deadline.  The canceller stores the reason, finds the
 * slot published and wakes the word (call.c).  A cancel is not lost in any
 * order: before the publish, the window's flag check sees the reason (and
 * the signal sent meanwhile takes the cancel exit or is an EINTR); after
 * the check, the kernel compares the word under its hash-bucket lock,
 * which the canceller's wake takes after its store, and the wait ends at
 * once (-EAGAIN) or is woken.  The slot stays published across retries:
 * it is still the same wait.
 */
INTR_API int intr_sleep(intr_ctx *ctx, uint64_t ns)
{
	struct intr_task *t = intr__body_of(ctx);
	struct intr__sc_ret r;
	struct timespec until;
	uint64_t now;

	if (!t)
		return -EINVAL;
	now = intr__now_ns();
	until = ns_to_ts(now + ns < now ? UINT64_MAX / 2 : now + ns);
	if (intr__wake_signal || cancel_held() ||
	    !intr__slot_publish(t, INTR_WS_FUTEX))
		return sleep_signal(t, &until);
	for (;;) {
		r = pass(t, SYS_futex, (long)&t->tok.reason,
			 FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0, (long)&until,
			 0, FUTEX_BITSET_MATCH_ANY);
		if (atomic_load(&t->tok.reason)) {
			/* Woken, -EAGAIN (the word was set before the
			 * kernel looked), the cancel exit, the signal's
			 * EINTR, or a deadline that came with the cancel:
			 * the reason. */
			intr__slot_clear(t);
			return intr__acknowledge(t);
		}
		/* 0 (spurious), -EINTR (another signal's): again, to the
		 * same deadline. */
		if (r.ret != 0 && r.ret != -EINTR && r.ret != -EAGAIN)
			break;
	}
	intr__fault_delay(INTR_DELAY_SLOT_CLEAR);
	if (intr__slot_clear(t))
		return intr__acknowledge(t);
	if (r.ret == -ETIMEDOUT)
		return 0;
	/* The futex refused (a seccomp filter, say): the signal's way. */
	if (r.ret == -ENOSYS || r.ret == -EPERM)
		return sleep_signal(t, &until);
	return (int)r.ret;
}

/* What is left of a deadline end (ns) as a timeout, or NULL for none. */
static struct timespec *left_of(uint64_t end, bool has_end,
				struct timespec *ts)
{
	uint64_t now;

	if (!has_end)
		return NULL;
	now = intr__now_ns();
	*ts = ns_to_ts(end > now ? end - now : 0);
	return ts;
}

/* Sets of at most this many entries wait without the signal. */
#define POLL_WOKEN_MAX	15

/*
 * intr_poll's wait without the signal: the caller's entries and the call's
 * wake eventfd in one ppoll, which the cancel ends by writing the eventfd
 * (slot.c).  False if it cannot be made (the caller takes the signal),
 * else true with the result in *res.  The caller's array was read and
 * written by a ppoll already, so copying it cannot fault.
 */
static bool poll_woken(struct intr_task *t, struct pollfd *fds, nfds_t nfds,
		       uint64_t end, bool has_end, long *res)
{
	struct pollfd p[POLL_WOKEN_MAX + 1];
	struct intr__sc_ret r;
	struct timespec ts;
	long n = 0;
	nfds_t i;
	bool woken;
	int fd;

	fd = intr__slot_fd(t);
	if (fd < 0 || !intr__slot_publish(t, INTR_WS_FD))
		return false;
	if (nfds)
		memcpy(p, fds, nfds * sizeof(*p));
	p[nfds] = (struct pollfd){ .fd = fd, .events = POLLIN };
	for (;;) {
		/* The window's flag check looks at the reason after the
		 * publish. */
		r = pass(t, SYS_ppoll, (long)p, (long)(nfds + 1),
			 (long)left_of(end, has_end, &ts), 0, 8, 0);
		if (r.ret != -EINTR || r.exited || atomic_load(&t->tok.reason))
			break;
		/* Another signal's.  A handler that forked left the child
		 * without this slot and fd: the signal's way there. */
		if ((atomic_load(&t->wslot) & INTR_WS_KIND) != INTR_WS_FD ||
		    t->wake_fd != fd) {
			intr__slot_clear(t);
			return false;
		}
	}
	woken = intr__slot_clear(t);
	if (r.exited || r.ret == -EINTR || (r.ret < 0 && woken)) {
		*res = intr__acknowledge(t);	/* the reason is set */
		return true;
	}
	if (r.ret < 0) {
		*res = r.ret;
		return true;
	}
	for (i = 0; i < nfds; i++) {
		fds[i].revents = p[i].revents;
		n += p[i].revents != 0;
	}
	/* Data first, even when woken: the next wait reports the cancel. */
	if (n || (!woken && !atomic_load(&t->tok.reason)))
		*res = n;
	else
		*res = intr__acknowledge(t);
	return true;
}

/* ppoll rather than poll: aarch64 has no poll system call.  The timeout is
 * kept as a deadline across restarts.  A call that would block looks once
 * without blocking, then waits without the signal if the set is small. */
INTR_API int intr_poll(intr_ctx *ctx, struct pollfd *fds, nfds_t nfds,
		       int timeout_ms)
{
	struct intr_task *t = intr__body_of(ctx);
	bool has_end = timeout_ms >= 0;
	struct timespec ts, zero = { 0, 0 };
	uint64_t end = 0;
	long r;

	if (!t)
		return -EINVAL;
	if (has_end)
		end = intr__now_ns() + (uint64_t)timeout_ms * 1000000u;
	if (timeout_ms && nfds <= POLL_WOKEN_MAX && !intr__wake_signal &&
	    !cancel_held()) {
		do
			r = cp_once(t, SYS_ppoll, (long)fds, (long)nfds,
				    (long)&zero, 0, 8, 0);
		while (r == -EINTR);
		if (r)
			return (int)r;
		if (poll_woken(t, fds, nfds, end, has_end, &r))
			return (int)r;
	}
	do
		r = cp_once(t, SYS_ppoll, (long)fds, (long)nfds,
			    (long)left_of(end, has_end, &ts), 0, 8, 0);
	while (r == -EINTR);
	return (int)r;
}
