/* SPDX-License-Identifier: MIT */
/*
 * io_uring waits on an atomic signal mask.
 *
 * The interrupt signal is blocked while the cancel is checked, and the
 * wait itself goes through liburing's sigmask argument, so io_uring_enter()
 * installs the body's mask (interrupt signal unblocked) only for the
 * duration of the wait, atomically.  A cancel that lands after the check
 * finds its signal pending when the wait starts, and the wait returns
 * -EINTR at once: no window, no assembly.  A completion already in the
 * ring wins over the cancel: it is returned, and the next wait reports the
 * cancel.
 */
#include "config.h"

#include <errno.h>

#include "internal.h"
#include "interruptible/uring.h"

static void block_interrupt(sigset_t *body)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, intr__signo);
	pthread_sigmask(SIG_BLOCK, &set, body);
}

INTR_API int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
				  struct io_uring_cqe **cqe, unsigned wait_nr,
				  struct __kernel_timespec *ts)
{
	struct intr_task *t = intr__body_of(ctx);
	sigset_t body;
	int ret;

	if (!t || !ring || !cqe)
		return -EINVAL;
	/* Enough completions already there: no system call at all. */
	if (io_uring_cq_ready(ring) >= (wait_nr ? wait_nr : 1))
		return io_uring_peek_cqe(ring, cqe);

	block_interrupt(&body);
	for (;;) {
		if (atomic_load(&t->tok.reason)) {
			/* Data first: whatever arrived is returned. */
			ret = io_uring_peek_cqe(ring, cqe);
			if (ret)
				ret = intr__acknowledge(t);
			break;
		}
		ret = io_uring_wait_cqes(ring, cqe, wait_nr, ts, &body);
		if (ret != -EINTR)
			break;
		/* The cancel, or another signal: the check above decides. */
	}
	pthread_sigmask(SIG_SETMASK, &body, NULL);
	return ret;
}

INTR_API int intr_uring_wait_cqe(intr_ctx *ctx, struct io_uring *ring,
				 struct io_uring_cqe **cqe)
{
	return intr_uring_wait_cqes(ctx, ring, cqe, 1, NULL);
}

INTR_API int intr_uring_submit_and_wait(intr_ctx *ctx, struct io_uring *ring,
					unsigned wait_nr)
{
	struct intr_task *t = intr__body_of(ctx);
	struct io_uring_cqe *cqe;
	sigset_t body;
	int ret, submitted;

	if (!t || !ring)
		return -EINVAL;
	block_interrupt(&body);
	if (atomic_load(&t->tok.reason)) {
		ret = intr__acknowledge(t);	/* nothing submitted */
		goto out;
	}
	/* Submitting does not wait; a cancel meanwhile stays pending and
	 * ends the wait below at once.  Waiting separately is what keeps an
	 * interrupted wait from hiding behind a positive submit count. */
	submitted = io_uring_submit(ring);
	ret = submitted;
	if (submitted < 0 || !wait_nr)
		goto out;
	for (;;) {
		if (io_uring_cq_ready(ring) >= wait_nr)
			break;
		if (atomic_load(&t->tok.reason)) {
			ret = intr__acknowledge(t);
			goto out;
		}
		ret = io_uring_wait_cqes(ring, &cqe, wait_nr, NULL, &body);
		if (ret && ret != -EINTR)
			goto out;
	}
	ret = submitted;
out:
	pthread_sigmask(SIG_SETMASK, &body, NULL);
	return ret;
}
