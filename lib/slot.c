/* SPDX-License-Identifier: MIT */
/*
 * The wake slot: waits that end on a cancel without the interrupt signal.
 *
 * A body about to make such a wait publishes its kind in the call's slot
 * (t->wslot), looks at the reason, waits on a kernel object the canceller
 * can wake, and takes the slot back.  The canceller, under the tree lock,
 * claims a published slot and wakes that object instead of signalling
 * (call.c, "Waits that need no signal", has the argument).  The objects:
 *
 *   INTR_WS_FUTEX  intr_sleep: a futex on the call's own reason word
 *   INTR_WS_FD     the io_uring waits: ppoll on the ring's fd and the
 *                  call's wake eventfd, which the canceller writes
 *
 * The wake eventfd is made by the call's first wait of that kind and
 * closed by its end step, both under the tree lock; a budget keeps them
 * to a sixteenth of the descriptor limit, and past it (or if eventfd()
 * fails) the wait takes the signal.  Only the canceller writes it, so it
 * is never read: once written it stays readable for the rest of the call,
 * whose reason stays set as long.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static atomic_int fds_live;
static atomic_int fds_cap = -1;		/* not computed yet */

bool intr__slot_publish(struct intr_task *t, int kind)
{
	int none = INTR_WS_NONE;

	if (atomic_compare_exchange_strong(&t->wslot, &none, kind)) {
		/* A store then a load of another word: under qemu-user the
		 * translated release/acquire pair lets the load pass the
		 * store; the fence keeps them in order (as task.c's). */
		atomic_thread_fence(memory_order_seq_cst);
		return true;
	}
	atomic_fetch_or(&t->wslot, INTR_WS_SIGNAL);
	atomic_thread_fence(memory_order_seq_cst);
	return false;
}

bool intr__slot_clear(struct intr_task *t)
{
	return atomic_exchange(&t->wslot, INTR_WS_NONE) & INTR_WS_WOKEN;
}

void intr__slot_signal(struct intr_task *t)
{
	if (atomic_load(&t->wslot) == INTR_WS_NONE)
		return;
	/* Before the canceller's claim: it finds SIGNAL and sends.  After
	 * it: this reads from the claim, which came after the reason's
	 * store, so the look at the reason that follows sees it. */
	atomic_fetch_or(&t->wslot, INTR_WS_SIGNAL);
	atomic_thread_fence(memory_order_seq_cst);
}

/* How many wake eventfds may exist at once: a sixteenth of the soft
 * descriptor limit, at most 1024, so the application keeps the rest. */
static int cap(void)
{
	int c = atomic_load(&fds_cap);
	struct rlimit rl;

	if (c >= 0)
		return c;
	c = 0;
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		c = rl.rlim_cur == RLIM_INFINITY ||
		    rl.rlim_cur >= (rlim_t)16 * 1024 ?
		    1024 : (int)(rl.rlim_cur / 16);
	atomic_store(&fds_cap, c);
	return c;
}

/*
 * Made and stored under the tree lock, which fork() holds (lifecycle.c): a
 * child finds every wake fd of the parent's recorded in its call, and
 * closes each (intr__call_after_fork), or none at all.  The lock also
 * keeps out a handler on this thread that would make a second one.
 */
int intr__slot_fd(struct intr_task *t)
{
	int fd = t->wake_fd, e, c;
	sigset_t saved;

	if (fd >= 0 || intr__wake_signal)
		return fd;
	e = errno;
	c = cap();
	intr__tree_lock(&saved);
	fd = t->wake_fd;
	if (fd < 0 && atomic_load(&fds_live) < c) {
		fd = intr__fault(INTR_SITE_WAKE_FD) ? -1 :
		     eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0) {
			atomic_fetch_add(&fds_live, 1);
			/* For the canceller, published again by the
			 * slot's swap. */
			t->wake_fd = fd;
		}
	}
	intr__tree_unlock(&saved);
	errno = e;
	return fd;
}

void intr__slot_close_locked(struct intr_task *t)
{
	int e = errno;

	if (t->wake_fd < 0)
		return;
	close(t->wake_fd);
	t->wake_fd = -1;
	atomic_fetch_sub(&fds_live, 1);
	errno = e;
}

void intr__slot_after_fork(void)
{
	/* Every wake fd of the parent's was closed with its call. */
	atomic_store(&fds_live, 0);
}

void intr__slot_wake_locked(struct intr_task *t, int s)
{
	static const uint64_t one = 1;
	int e;

	if ((s & INTR_WS_KIND) == INTR_WS_FUTEX) {
		intr__futex_wake(&t->tok.reason, 1);
		return;
	}
	/* INTR_WS_FD: the counter stays set, so a ppoll not yet asleep
	 * finds it readable.  Async-signal-safe, as the cancel must be. */
	e = errno;
	/* Not write(): the canceller may run in a body, where an interposed
	 * write (libinterruptible-libc) is a cancellation point. */
	if (syscall(SYS_write, t->wake_fd, &one, sizeof(one)) < 0) {
		/* Cannot fail on an eventfd written once. */
	}
	errno = e;
}
