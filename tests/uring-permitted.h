/* SPDX-License-Identifier: MIT */
/*
 * Whether this process may use io_uring at all: where it is not permitted
 * (Docker's default seccomp profile, kernel.io_uring_disabled, a kernel
 * without it) io_uring_setup fails with EPERM, EACCES or ENOSYS, and the
 * tests of the io_uring parts skip, saying so in one line.  Any other
 * failure is a real one, and the tests that need a ring then fail.
 * No Check.
 */
#ifndef INTR_TEST_URING_PERMITTED_H
#define INTR_TEST_URING_PERMITTED_H

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

/* 1 if a ring can be set up here; 0 if io_uring is not permitted, with
 * why (one line) in why[size]; a negative error number otherwise. */
static inline int h_uring_permitted(char *why, size_t size)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(2, &ring, 0);

	if (ret == 0) {
		io_uring_queue_exit(&ring);
		return 1;
	}
	if (ret == -EPERM || ret == -EACCES || ret == -ENOSYS) {
		snprintf(why, size, "io_uring is not permitted here "
			 "(io_uring_setup: %s)", strerror(-ret));
		return 0;
	}
	return ret;
}

#endif /* INTR_TEST_URING_PERMITTED_H */
