/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the Check suites.  Every wait here is bounded, so a
 * lost cancel fails the test instead of hanging the suite.
 *
 * Include it right after config.h (which asks for _GNU_SOURCE: pipe2,
 * syscall).  Helpers that do not call Check say so: only those may run in a
 * forked child or on a worker thread.
 */
#ifndef INTR_TEST_HARNESS_H
#define INTR_TEST_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"
#include "host.h"
#include "wait.h"

/* Hand-offs through a pipe order memory as a lock would, but helgrind only
 * sees locks: the helgrind build (INTR_VALGRIND) names them. */
#ifdef INTR_VALGRIND
#include <valgrind/helgrind.h>
#define H_HAPPENS_BEFORE(p)	ANNOTATE_HAPPENS_BEFORE(p)
#define H_HAPPENS_AFTER(p)	ANNOTATE_HAPPENS_AFTER(p)
#else
#define H_HAPPENS_BEFORE(p)	do { } while (0)
#define H_HAPPENS_AFTER(p)	do { } while (0)
#endif

/* ------------------------------------------------------------ time */

/* The h_now_ns() value ms milliseconds from now.  No Check. */
static inline uint64_t h_deadline(unsigned ms)
{
	return h_now_ns() + (uint64_t)ms * 1000000u;
}

/* True once the deadline end (from h_deadline) has passed.  No Check. */
static inline bool h_passed(uint64_t end)
{
	return (int64_t)(end - h_now_ns()) <= 0;
}

/* Sleep ms milliseconds, resuming after signals.  No Check. */
static inline void h_sleep_ms(unsigned ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------ scale */

/*
 * INTR_TEST_SCALE, a percentage (default 100), scales every iteration count
 * of the suites: the checker builds (valgrind runs 20-50 times slower) set
 * it low.  Coverage requirements (a cancel landing in the gap) only hold at
 * full scale; h_full_scale() says whether to demand them.  No Check.
 */
static inline long h_scale_pct(void)
{
	const char *env = getenv("INTR_TEST_SCALE");
	long v = env && *env ? strtol(env, NULL, 10) : 100;

	return v > 0 ? v : 100;
}

/* n scaled by INTR_TEST_SCALE, at least 1. */
static inline long h_scale(long n)
{
	long v = n * h_scale_pct() / 100;

	return v > 0 ? v : 1;
}

static inline bool h_full_scale(void)
{
	return h_scale_pct() >= 100;
}

/*
 * For loops of many rounds: true while round i of n should run, stopping
 * early once stop (from h_deadline) has passed, after at least 100 rounds.
 * A loaded machine then runs fewer rounds instead of outrunning its test
 * case's timeout; each round still asserts all it did.  No Check.
 */
static inline bool h_more_rounds(long i, long n, uint64_t stop)
{
	return i < n && (i < 100 || !h_passed(stop));
}

/* True when the test runs under valgrind, which emulates signal delivery:
 * it keeps signals blocked in the kernel and hands them to the program at
 * its own scheduling points.  No Check. */
static inline bool h_under_valgrind(void)
{
	return RUNNING_ON_VALGRIND != 0;
}

/* ------------------------------------------------------------ threads */

/* The calling thread's kernel id.  No Check. */
static inline pid_t h_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* True once thread tid of this process sleeps in the kernel (state S in
 * /proc/self/task/TID/stat), within ms milliseconds.  No Check. */
static inline bool h_wait_sleeping(pid_t tid, unsigned ms)
{
	uint64_t end = h_deadline(ms);
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (;;) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return false;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			/* "tid (comm) S ...": the state follows the last ')' */
			p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S')
				return true;
		}
		if (h_passed(end))
			return false;
		h_sleep_ms(1);
	}
}

/* ------------------------------------------------------------ randomness */

/* splitmix64: small, deterministic, good enough for a schedule. */
struct h_rng {
	uint64_t s;
};

static inline uint64_t h_rng_next(struct h_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t h_rng_below(struct h_rng *r, uint64_t n)
{
	return h_rng_next(r) % n;
}

/* A gap for a body to spend between its check and its call: 0 half the
 * time, else 0 to max_ns nanoseconds. */
static inline uint64_t h_pick_gap(struct h_rng *r, uint64_t max_ns)
{
	return h_rng_below(r, 2) ? h_rng_below(r, max_ns + 1) : 0;
}

/* Seed from INTR_TEST_SEED if set, else from the clock; print the seed so
 * that INTR_TEST_SEED can repeat the run. */
static inline void h_rng_seed(struct h_rng *r, const char *test)
{
	const char *env = getenv("INTR_TEST_SEED");
	uint64_t seed;

	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed = h_now_ns() ^ ((uint64_t)getpid() << 32);
	r->s = seed;
	printf("%s: seed %" PRIu64 " (INTR_TEST_SEED=%" PRIu64
	       " repeats it)\n", test, seed, seed);
	fflush(stdout);
}

/* ------------------------------------------------------------ errno */

#define MAGIC_ERRNO	4242

/*
 * Evaluate expr with errno set to MAGIC_ERRNO; check both its value and that
 * errno survived.  errno is sampled before any Check macro runs.
 */
#define CHECK_KEEPS_ERRNO(want, expr)					\
	do {								\
		int ret_, err_;						\
									\
		errno = MAGIC_ERRNO;					\
		ret_ = (expr);						\
		err_ = errno;						\
		ck_assert_msg(ret_ == (want), "%s returned %d, want %d", \
			      #expr, ret_, (int)(want));		\
		ck_assert_msg(err_ == MAGIC_ERRNO,			\
			      "%s changed errno to %d", #expr, err_);	\
	} while (0)

/* ------------------------------------------------------------ pipes */

static inline void h_make_pipe(int fds[2])
{
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
}

/* No Check. */
static inline void h_close_pipe(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
}

static inline void h_write_byte(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

/* ------------------------------------------------------------ bounded waits */

/*
 * Wait up to ms milliseconds for fd to become readable; EINTR does not end
 * the wait.  Returns 1 once it is readable, 0 if ms passed first, -1 (errno
 * set) if poll() failed otherwise.  No Check.
 */
static inline int h_poll_in(int fd, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = h_deadline(ms);

	for (;;) {
		int64_t left = (int64_t)(end - h_now_ns());
		int ret = poll(&p, 1, left > 0 ? (int)(left / 1000000) + 1 : 0);

		if (ret > 0)
			return 1;
		if (ret == 0 && left <= 0)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -1;
	}
}

/* Poll fd for input, bounded by ms; fails the test on expiry. */
static inline void h_wait_readable(int fd, unsigned ms, const char *what)
{
	int ret = h_poll_in(fd, ms);

	if (ret == 0)
		ck_abort_msg("%s: nothing within %u ms", what, ms);
	if (ret < 0)
		ck_assert_int_eq(errno, EINTR);
}

/* Wait up to ms milliseconds for t to finish, then join it.  Returns the
 * join's result, or fails the test if the task did not finish in time. */
static inline int h_join_within(intr_task *t, void **result, unsigned ms)
{
	int fd = host_task_fd(t);
	int ret;

	ck_assert_int_ge(fd, 0);
	ret = h_poll_in(fd, ms);
	if (ret == 0)
		ck_abort_msg("task did not finish within %u ms", ms);
	if (ret < 0)
		ck_assert_int_eq(errno, EINTR);
	return host_join(t, result);
}

/* True if task t is done (its fd is readable), without waiting. */
static inline bool h_task_done(intr_task *t)
{
	struct pollfd p = { .fd = host_task_fd(t), .events = POLLIN };

	ck_assert_int_ge(p.fd, 0);
	return poll(&p, 1, 0) > 0;
}

/* Wait, bounded, until *v >= at_least.  No Check.  Under helgrind, the
 * store that raised *v must follow H_HAPPENS_BEFORE(v) to order what came
 * before it. */
static inline bool h_wait_atomic(atomic_int *v, int at_least, unsigned ms)
{
	uint64_t end = h_deadline(ms);

	while (atomic_load(v) < at_least) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };

		if (h_passed(end))
			return false;
		nanosleep(&ts, NULL);
	}
	H_HAPPENS_AFTER(v);
	return true;
}

/* The same, busy-waiting (to act within microseconds of the change). */
static inline bool h_spin_atomic(atomic_int *v, int at_least, unsigned ms)
{
	uint64_t end = h_deadline(ms);

	while (atomic_load(v) < at_least)
		if (h_passed(end))
			return false;
	H_HAPPENS_AFTER(v);
	return true;
}

/* ------------------------------------------------------------ tokens */

static inline intr_token *h_new_token(intr_token *parent)
{
	intr_token *tok = NULL;

	ck_assert_int_eq(intr_token_new(&tok, parent), 0);
	ck_assert_ptr_nonnull(tok);
	return tok;
}

/* ------------------------------------------------------------ gated bodies */

/* What a gated body returns. */
#define BODY_MARK(n)	((void *)(uintptr_t)(n))
#define BODY_RELEASED	BODY_MARK(0x5e1eaf)	/* the gate opened */
#define BODY_CANCELLED	BODY_MARK(0xcace1)	/* intr_cancelled() */
#define BODY_TIMEOUT	BODY_MARK(0x71e0)	/* the body gave up */
#define BODY_ERROR	BODY_MARK(0xe770)	/* a system call failed */

/*
 * A gate lets the test hold a body: the body announces itself on up[] and
 * waits (bounded) for the test to write go[1], or for a cancel.
 */
struct h_gate {
	int go[2];		/* the test writes go[1] to open it */
	int up[2];		/* the body writes up[1] once it runs */
};

static inline void h_gate_init(struct h_gate *g)
{
	h_make_pipe(g->go);
	h_make_pipe(g->up);
}

static inline void h_gate_fini(struct h_gate *g)
{
	h_close_pipe(g->go);
	h_close_pipe(g->up);
}

static inline void h_gate_open(struct h_gate *g)
{
	ck_assert_int_eq(write(g->go[1], "g", 1), 1);
}

/* Wait (bounded by ms) until the body has announced itself. */
static inline void h_gate_wait_up(struct h_gate *g, unsigned ms)
{
	char c;

	h_wait_readable(g->up[0], ms, "body start");
	ck_assert_int_eq(read(g->up[0], &c, 1), 1);
	H_HAPPENS_AFTER(g);
}

/* Body side: tell the test the body runs.  No Check. */
static inline bool h_gate_announce(struct h_gate *g)
{
	H_HAPPENS_BEFORE(g);
	return write(g->up[1], "u", 1) == 1;
}

/* Body side: wait up to ms for the gate (or, if heed_cancel, a cancel);
 * returns how the wait ended, as a BODY_ mark.  No Check. */
static inline void *h_gate_wait(intr_ctx *ctx, const struct h_gate *g,
				unsigned ms, bool heed_cancel)
{
	struct pollfd p = { .fd = g->go[0], .events = POLLIN };
	uint64_t end = h_deadline(ms);

	for (;;) {
		int64_t left = (int64_t)(end - h_now_ns());
		int ret;

		if (left <= 0)
			return BODY_TIMEOUT;
		ret = poll(&p, 1, (int)(left / 1000000) + 1);
		if (ret > 0)
			return BODY_RELEASED;
		if (ret < 0 && errno != EINTR)
			return BODY_ERROR;
		if (heed_cancel && intr_cancelled(ctx))
			return BODY_CANCELLED;
	}
}

/* ------------------------------------------------------------ quiet bodies */

/*
 * Body side: n sleeps of 20 us, the kind of call a stray interrupt would
 * break.  Counts the EINTRs and the sleeps after which intr_cancelled() was
 * true; a failure other than EINTR goes to *err.  No Check.
 */
static inline void h_quiet_sleeps(intr_ctx *ctx, int n, int *eintr,
				  int *cancelled, int *err)
{
	int k;

	for (k = 0; k < n; k++) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };

		while (nanosleep(&ts, &ts) < 0) {
			if (errno != EINTR) {
				*err = errno;
				break;
			}
			(*eintr)++;
		}
		if (intr_cancelled(ctx))
			(*cancelled)++;
	}
}

/* ------------------------------------------------------------ suites */

/* A test case with a timeout of timeout_s seconds, added to s. */
static inline TCase *h_tcase(Suite *s, const char *name, int timeout_s)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

/*
 * The tag of the test cases that fork while the library's threads run:
 * qemu-user cannot (the child aborts), so make check-aarch64 leaves them
 * out (CK_EXCLUDE_TAGS).
 */
#define H_TAG_THREADED_FORK	"threaded-fork"

/*
 * The tag of the test cases that make check-aarch64 leaves out for a
 * reason not understood yet: under qemu-user, process_kill_never_cancels
 * (another process's flood of kill()) dies of the signal's default
 * disposition in about half the runs, and check-wrappers' race_data_read
 * has had a call that only the re-send ended; natively
 * neither has.
 */
#define H_TAG_QEMU_OPEN		"qemu-open"

/*
 * Tests left out of a suite because what they need is not there (io_uring
 * not permitted): h_skip_test() records one, with the reason, instead of
 * adding it, and h_run_suite() reports it as a skipped test.
 */
#define H_SKIPS_MAX	32

static const char *h_skipped[H_SKIPS_MAX];
static const char *h_skip_why[H_SKIPS_MAX];
static int h_nskipped;

static inline void h_skip_test(const char *name, const char *why)
{
	if (h_nskipped < H_SKIPS_MAX) {
		h_skipped[h_nskipped] = name;
		h_skip_why[h_nskipped++] = why;
	}
}

/* Copy Check's TAP file to stdout, the skipped tests before the plan. */
static inline void h_tap_with_skips(FILE *f)
{
	char line[4096];
	int n = 0, k;

	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "1..", 3))
			continue;	/* the plan: ours comes last */
		if (!strncmp(line, "ok ", 3) || !strncmp(line, "not ok ", 7))
			n++;
		fputs(line, stdout);
	}
	for (k = 0; k < h_nskipped; k++)
		printf("ok %d # SKIP %s: %s\n", ++n, h_skipped[k],
		       h_skip_why[k]);
	printf("1..%d\n", n);
	fflush(stdout);
}

/* Run a suite and turn its result into an exit status.  The results go
 * to stdout as TAP too ("ok 3 - tests/check-x.c:tcase:test: Passed"),
 * which make check reads: every test is counted and a failure is named.
 * When tests were left out (h_skip_test), Check's TAP goes through a file
 * first, so that they can be added. */
static inline int h_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	char path[] = "/tmp/intr-tap-XXXXXX";
	FILE *tap = NULL;
	int failed, fd = -1;

	if (h_nskipped) {
		fd = mkstemp(path);
		if (fd < 0) {
			printf("Bail out! mkstemp %s: %s\n", path,
			       strerror(errno));
			return EXIT_FAILURE;
		}
		srunner_set_tap(sr, path);
	} else {
		srunner_set_tap(sr, "-");
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);	/* closes the TAP file */
	if (fd >= 0) {
		tap = fdopen(fd, "r");
		if (!tap) {
			printf("Bail out! %s: %s\n", path, strerror(errno));
			return EXIT_FAILURE;
		}
		h_tap_with_skips(tap);
		fclose(tap);
		unlink(path);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
