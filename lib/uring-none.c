/* SPDX-License-Identifier: MIT */
/*
 * The io_uring waits in a library built without liburing: they exist, so
 * that every build of one soname exports the same functions, and they
 * return -ENOSYS.  <interruptible/uring.h> is not installed by such a
 * build, so only a program built against another build can call them.
 */
#include "config.h"

#include <errno.h>

#include "internal.h"

struct io_uring;
struct io_uring_cqe;
struct __kernel_timespec;

INTR_API int intr_uring_wait_cqe(intr_ctx *ctx, struct io_uring *ring,
				 struct io_uring_cqe **cqe);
INTR_API int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
				  struct io_uring_cqe **cqe, unsigned wait_nr,
				  struct __kernel_timespec *ts);
INTR_API int intr_uring_submit_and_wait(intr_ctx *ctx, struct io_uring *ring,
					unsigned wait_nr);

INTR_API int intr_uring_wait_cqe(intr_ctx *ctx, struct io_uring *ring,
				 struct io_uring_cqe **cqe)
{
	return -ENOSYS;
}

INTR_API int intr_uring_wait_cqes(intr_ctx *ctx, struct io_uring *ring,
				  struct io_uring_cqe **cqe, unsigned wait_nr,
				  struct __kernel_timespec *ts)
{
	return -ENOSYS;
}

INTR_API int intr_uring_submit_and_wait(intr_ctx *ctx, struct io_uring *ring,
					unsigned wait_nr)
{
	return -ENOSYS;
}
