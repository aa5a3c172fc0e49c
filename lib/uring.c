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
 * cancel.  A wait's timeout is a deadline: restarts after other signals do
 * not stretch it.
 *
 * Where the ring allows it, the wait needs no signal: it sleeps in ppoll
 * on the ring's fd (readable while the completion queue holds an entry)
 * and the call's wake eventfd, which the cancel writes (slot.c).  Same
 * atomic mask, so a signal sent before the slot was out still ends it.
 * Not for rings whose completions only a system call of the ring brings
 * in (IOPOLL, DEFER_TASKRUN, COOP_TASKRUN: their task work is not run by
 * a sleep in ppoll), one whose fd was closed after registering it, a wait
 * for more than one entry (the fd is readable with one in the queue), or
 * a queue with overflowed entries or task work pending: those
 * wait in io_uring_enter() for the signal, as before.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#include "internal.h"
#include "interruptible/uring.h"

static void block_interrupt(sigset_t *body)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, intr__signo);
	pthread_sigmask(SIG_BLOCK, &set, body);
}

/* A timeout ts as a deadline on CLOCK_MONOTONIC; 0 for one the kernel
 * would refuse, which then goes to it unchanged. */
static uint64_t deadline_of(const struct __kernel_timespec *ts)
{
	uint64_t ns, now;

	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		return 0;
	if ((uint64_t)ts->tv_sec > UINT64_MAX / 2 / 1000000000u)
		return UINT64_MAX;
	ns = (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
	now = intr__now_ns();
	return now + ns < now ? UINT64_MAX : now + ns;
}

/* What is left of the deadline end, as a timeout (0 once it passed). */
static void left_of(uint64_t end, struct __kernel_timespec *left)
{
	uint64_t now = intr__now_ns(), ns = end > now ? end - now : 0;

	left->tv_sec = (long long)(ns / 1000000000u);
	left->tv_nsec = (long long)(ns % 1000000000u);
}

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN 0
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN 0
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN 0
#endif

#define RING_NOT_POLLED (IORING_SETUP_IOPOLL | IORING_SETUP_COOP_TASKRUN | \
			 IORING_SETUP_DEFER_TASKRUN)

/*
 * Wait for wait_nr entries without the signal: ppoll on the ring's fd and
 * the wake fd, the interrupt signal open only inside it (body).  1 if this
 * wait cannot be made here (the caller waits in io_uring_enter), else
 * what io_uring_wait_cqes() would return; -EINTR for "look at the reason
 * and wait again" (woken, a signal, the cancel).
 */
static int wait_polled(struct intr_task *t, struct io_uring *ring,
		       struct io_uring_cqe **cqe, unsigned wait_nr,
		       const struct __kernel_timespec *left,
		       const sigset_t *body)
{
	unsigned need = wait_nr;
	struct timespec ts, *tsp = NULL;
	struct pollfd p[2];
	bool woken;
	long r;
	int fd;

	/* A body that blocked the interrupt signal holds its cancel off
	 * (interruptible(7)): the wait must not end on it either.  wait_nr
	 * 0 does not wait at all. */
	if (sigismember(body, intr__signo) == 1 || !wait_nr ||
	    ring->ring_fd < 0 || (ring->flags & RING_NOT_POLLED) ||
	    need != 1 || io_uring_cq_ready(ring) ||
	    (IO_URING_READ_ONCE(*ring->sq.kflags) &
	     (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
		return 1;
	fd = intr__slot_fd(t);
	if (fd < 0 || !intr__slot_publish(t, INTR_WS_FD))
		return 1;
	if (atomic_load(&t->tok.reason)) {
		intr__slot_clear(t);
		return -EINTR;
	}
	if (left) {
		ts.tv_sec = (time_t)left->tv_sec;
		ts.tv_nsec = (long)left->tv_nsec;
		tsp = &ts;
	}
	p[0] = (struct pollfd){ .fd = ring->ring_fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = fd, .events = POLLIN };
	r = syscall(SYS_ppoll, p, 2, tsp, body, _NSIG / 8);
	woken = intr__slot_clear(t);
	/* Data first, even when woken: the next wait reports the cancel. */
	if (io_uring_cq_ready(ring) >= need)
		return io_uring_peek_cqe(ring, cqe);
	if (woken)
		return -EINTR;		/* the reason is set */
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIME;
	/* Readable without the entries: task work or an overflow to run,
	 * which io_uring_enter() does. */
	return 1;
}

INTR_API int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
				  struct io_uring_cqe **cqe, unsigned wait_nr,
				  struct __kernel_timespec *ts)
{
	struct intr_task *t = intr__body_of(ctx);
	struct __kernel_timespec left, *tsp = ts;
	uint64_t end = 0;
	sigset_t body;
	int ret, e;

	if (!t || !ring || !cqe)
		return -EINVAL;
	/* Enough completions already there: no system call at all. */
	if (io_uring_cq_ready(ring) >= (wait_nr ? wait_nr : 1))
		return io_uring_peek_cqe(ring, cqe);
	/* The timeout is kept as a deadline across restarts after other
	 * signals, as intr_poll() keeps its own. */
	if (ts)
		end = deadline_of(ts);

	e = errno;
	block_interrupt(&body);
	intr__slot_signal(t);
	for (;;) {
		if (atomic_load(&t->tok.reason)) {
			/* Data first: whatever arrived is returned. */
			ret = io_uring_peek_cqe(ring, cqe);
			if (ret)
				ret = intr__acknowledge(t);
			break;
		}
		if (end) {
			left_of(end, &left);
			tsp = &left;
		}
		/* A timeout the kernel would refuse goes to it as is. */
		ret = ts && !end ? 1 :
		      wait_polled(t, ring, cqe, wait_nr, tsp, &body);
		if (ret == 1)
			ret = io_uring_wait_cqes(ring, cqe, wait_nr, tsp, &body);
		if (ret != -EINTR)
			break;
		/* The cancel, or another signal: the check above decides. */
	}
	pthread_sigmask(SIG_SETMASK, &body, NULL);
	errno = e;
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
	int ret, submitted, e;

	if (!t || !ring)
		return -EINVAL;
	e = errno;
	block_interrupt(&body);
	intr__slot_signal(t);
	if (atomic_load(&t->tok.reason)) {
		ret = intr__acknowledge(t);	/* nothing submitted */
		goto out;
	}
	/* Submitting does not wait; a cancel meanwhile stays pending and
	 * ends the wait below at once.  Once SQEs are submitted, the count
	 * is what the caller must have: they are in flight.  A cancel (or an
	 * error) that cuts the wait short is then left for the next wait to
	 * report, unacknowledged; only with nothing submitted is the reason
	 * returned. */
	submitted = io_uring_submit(ring);
	ret = submitted;
	if (submitted < 0 || !wait_nr)
		goto out;
	for (;;) {
		if (io_uring_cq_ready(ring) >= wait_nr)
			break;
		if (atomic_load(&t->tok.reason)) {
			ret = submitted ? submitted : intr__acknowledge(t);
			goto out;
		}
		ret = wait_polled(t, ring, &cqe, wait_nr, NULL, &body);
		if (ret == 1)
			ret = io_uring_wait_cqes(ring, &cqe, wait_nr, NULL,
						 &body);
		if (ret && ret != -EINTR) {
			if (submitted)
				ret = submitted;
			goto out;
		}
	}
	ret = submitted;
out:
	pthread_sigmask(SIG_SETMASK, &body, NULL);
	errno = e;
	return ret;
}
