/* SPDX-License-Identifier: MIT */
/*
 * Test Anything Protocol output for the test programs that do not use
 * Check (a program of its own per behaviour: a server, a fork, a signal
 * storm).  make check reads it through automake's tap-driver, so every
 * case is counted, not only every program.
 *
 *   tap_ok(cond, "what")      one case: "ok N - what" or "not ok N - what"
 *   tap_skip("why")           one case skipped: "ok N # SKIP why"
 *   tap_skip_all("why")       the whole program: "1..0 # SKIP why", exit 0
 *   tap_diag("...")           a comment line, "# ..."
 *   return tap_done();        the plan, a "# N passed, M failed, K skipped"
 *                             line;
 *                             exit status 1 if a case failed, else 0
 *
 * Output is flushed after every line, so a test killed by its bound still
 * shows how far it got.  Not thread-safe: report from one thread.
 */
#ifndef INTR_TEST_TAP_H
#define INTR_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count, tap_failures, tap_skips;

static inline void tap_vline(const char *head, const char *fmt, va_list ap)
{
	fputs(head, stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
}

__attribute__((format(printf, 2, 3)))
static inline bool tap_ok(bool cond, const char *fmt, ...)
{
	char head[48];
	va_list ap;

	tap_count++;
	if (!cond)
		tap_failures++;
	snprintf(head, sizeof(head), "%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	tap_vline(head, fmt, ap);
	va_end(ap);
	return cond;
}

__attribute__((format(printf, 1, 2)))
static inline void tap_skip(const char *fmt, ...)
{
	char head[48];
	va_list ap;

	tap_count++;
	tap_skips++;
	snprintf(head, sizeof(head), "ok %d # SKIP ", tap_count);
	va_start(ap, fmt);
	tap_vline(head, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2)))
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vline("# ", fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2), noreturn))
static inline void tap_skip_all(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vline("1..0 # SKIP ", fmt, ap);
	va_end(ap);
	exit(0);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	printf("# %d passed, %d failed, %d skipped\n",
	       tap_count - tap_failures - tap_skips, tap_failures, tap_skips);
	fflush(stdout);
	return tap_failures ? 1 : 0;
}

#endif /* INTR_TEST_TAP_H */
