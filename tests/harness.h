/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the Check suites.  Every wait here is bounded, so a
 * lost cancel fails the test instead of hanging the suite.
 */
#ifndef INTR_TEST_HARNESS_H
#define INTR_TEST_HARNESS_H

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

static inline uint64_t h_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Busy-wait for about ns nanoseconds (for cancel offsets in the microsecond
 * range, where nanosleep's slack would hide the window being tested). */
static inline void h_spin_ns(uint64_t ns)
{
	uint64_t end = h_now_ns() + ns;

	while (h_now_ns() < end)
		;
}

/* Wait up to ms milliseconds for t to finish, then join it.  Returns the
 * join's result, or fails the test if the task did not finish in time. */
static inline int h_join_within(intr_task *t, void **result, int ms)
{
	int fd = intr_task_fd(t);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int ret;

	ck_assert_int_ge(fd, 0);
	for (;;) {
		int64_t left = (int64_t)(end - h_now_ns()) / 1000000;

		if ((int64_t)(end - h_now_ns()) <= 0)
			left = 0;
		ret = poll(&p, 1, (int)left);
		if (ret > 0)
			break;
		if (ret == 0)
			ck_abort_msg("task did not finish within %d ms", ms);
		ck_assert_int_eq(errno, EINTR);
	}
	return intr_join(t, result);
}

/* Run a suite and turn its result into an exit status. */
static inline int h_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
