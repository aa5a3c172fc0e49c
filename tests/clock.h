/* SPDX-License-Identifier: MIT */
/*
 * Clock helpers for the test programs, with or without Check (the window
 * test and the stress program run without it): a monotonic clock in
 * nanoseconds, a busy-wait, and whether valgrind runs the program.
 */
#ifndef INTR_TEST_CLOCK_H
#define INTR_TEST_CLOCK_H

#include <stdint.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

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

#endif /* INTR_TEST_CLOCK_H */
