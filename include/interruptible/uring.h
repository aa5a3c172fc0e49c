/* SPDX-License-Identifier: MIT */
/*
 * libinterruptible: io_uring waits that a cancel always reaches.
 *
 * Same contract as liburing's functions of the same name, plus the reason
 * (-ECANCELED or -ETIMEDOUT) when the call is cancelled before or during
 * the wait; worker thread, inside the body only (-EINVAL otherwise).
 *
 * They are race-free without a signal window: the interrupt signal is kept
 * blocked while the cancel is checked, and io_uring_enter() unblocks it only
 * for the duration of the wait through its signal-mask argument, so a
 * cancel signal sent just before the wait makes it return at once.
 *
 * A CQE that is already in the ring is returned (0) even if the call was
 * cancelled: it is data, never dropped.  The next wait reports the cancel.
 * EINTR from any other signal is retried; a wait's timeout ts is kept as a
 * deadline across the retries, so they do not stretch it.
 *
 * intr_uring_submit_and_wait() submits and waits for wait_nr completions and
 * returns the number of SQEs submitted, like io_uring_submit_and_wait().
 * Whenever it submitted any, it returns their number, also when a cancel
 * (or an error) cut the wait short: those SQEs are in flight and their CQEs
 * will arrive, so no SQE is unaccounted for.  The cancel is then reported by
 * the next wait (the reason once no CQE is left in the ring) and by
 * intr_cancelled().  It returns the reason only when it submitted nothing:
 * cancelled before it entered the kernel (the SQEs stay queued), or with no
 * SQE queued.
 */
#ifndef INTERRUPTIBLE_URING_H
#define INTERRUPTIBLE_URING_H

#include <liburing.h>

#include <interruptible.h>

#ifdef __cplusplus
extern "C" {
#endif

int intr_uring_wait_cqe(intr_ctx *ctx, struct io_uring *ring,
			struct io_uring_cqe **cqe);
int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
			 struct io_uring_cqe **cqe, unsigned wait_nr,
			 struct __kernel_timespec *ts);
int intr_uring_submit_and_wait(intr_ctx *ctx, struct io_uring *ring,
			       unsigned wait_nr);

#ifdef __cplusplus
}
#endif

#endif /* INTERRUPTIBLE_URING_H */
