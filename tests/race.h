/* SPDX-License-Identifier: MIT */
/*
 * Shared machinery for the race suites (check-race, check-wrappers,
 * check-uring): many iterations of one blocking call with the cancel landing
 * before, at and after it, every wait bounded, every outcome counted.
 *
 * Here: the bounds every iteration obeys, CPU pinning (test thread on one
 * CPU, bodies on another), stall canaries and the slow-call log that
 * excuses a call slowed by the machine, configure and bounded-join helpers,
 * failure records for bodies (BCHECK and friends), the cancel schedule
 * (enum when, enum how), a body's record of its wrapper calls (struct call),
 * and the outcome tally with its reporting.  What a suite's bodies do, and
 * the rules it checks per iteration, stay in the suite.
 *
 * General helpers (time, rng, pipes, gates, tokens) are in harness.h, which
 * this includes.  Include it right after config.h.
 */
#ifndef INTR_TEST_RACE_H
#define INTR_TEST_RACE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "harness.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

/* ------------------------------------------------------------ bounds */

#define WAIT_MS		5000		/* bound on every wait */
#define SLOW_NS		500000000ull	/* a join this long counts as a hang */
#define MAX_SPIN_NS	50000		/* cancel offsets: 0-50 us */
#define MAX_GAP_NS	50000		/* body's gap before its call */
#define MAX_REPORTS	10		/* failures described in full */

/* ------------------------------------------------------------ pinning */

static int cpu_body = -1;	/* CPU for the workers, -1: no pinning */
static int cpu_main = -1;	/* CPU of the test thread */
static __thread bool worker_pinned;

/* Pin the test thread to its first allowed CPU and pick a second one for
 * the workers.  Returns false if there is only one CPU. */
static inline bool pin_setup(void)
{
	cpu_set_t set, one;
	int c, first = -1;

	ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof(set),
						&set), 0);
	for (c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (first < 0) {
			first = c;
		} else {
			cpu_body = c;
			break;
		}
	}
	if (cpu_body < 0) {
		printf("only one CPU: no pinning, gap coverage not required\n");
		fflush(stdout);
		return false;
	}
	cpu_main = first;
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof(one),
						&one), 0);
	return true;
}

/* In a body: move this worker to the workers' CPU (once per worker). */
static inline void body_pin(void)
{
	cpu_set_t one;

	if (cpu_body < 0 || worker_pinned)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu_body, &one);
	pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	worker_pinned = true;
}

/* ------------------------------------------------------------ stalls */

/*
 * Stall canaries.  A call that takes more than 500 ms is a hang-like event
 * (a cancel caught only by the 1 s re-send, or not at all) - unless the
 * machine itself stalled the test's threads for that long, which happens
 * on overloaded virtual machines.  One canary thread per test CPU sleeps
 * 1 ms at a time and logs every wake-up that came STALL_NS late or more.
 * A slow call that overlaps a logged stall is reported as starved and
 * excused; any other slow call fails the test.  The test starts only once
 * every canary measures (a stall before that would go unseen), and the
 * log keeps every stall of a test, so that one early in a long, loaded run
 * is not forgotten by the time the slow calls are judged.
 */
#define STALL_NS	100000000ull	/* 100 ms */
#define STALL_LOG	4096
#define SLOW_KEEP	64

struct canary {
	pthread_t thread;
	int cpu;			/* -1: not pinned */
	atomic_int measuring;		/* a first sleep has been timed */
	atomic_uint n;			/* stalls logged (one writer) */
	_Atomic uint64_t seen;		/* the end of its last wake-up */
	uint64_t from[STALL_LOG];
	uint64_t to[STALL_LOG];
};

static struct canary g_canary[2];
static int g_ncanary;
static atomic_int g_canary_stop;

static inline void *canary_main(void *p)
{
	struct canary *c = p;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (c->cpu >= 0) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(c->cpu, &one);
		pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	}
	while (!atomic_load(&g_canary_stop)) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 1000000 };
		uint64_t a = h_now_ns(), late;

		nanosleep(&ts, NULL);
		late = h_now_ns() - a;
		if (late >= STALL_NS) {
			unsigned k = atomic_load(&c->n);

			c->from[k % STALL_LOG] = a;
			c->to[k % STALL_LOG] = a + late;
			atomic_store(&c->n, k + 1);
		}
		atomic_store(&c->seen, a + late);
		atomic_store(&c->measuring, 1);
	}
	return NULL;
}

static inline void canaries_start(void)
{
	int k;

	atomic_store(&g_canary_stop, 0);
	g_ncanary = cpu_body >= 0 ? 2 : 1;
	for (k = 0; k < g_ncanary; k++) {
		g_canary[k].cpu = k ? cpu_body : cpu_main;
		atomic_store(&g_canary[k].n, 0);
		atomic_store(&g_canary[k].seen, 0);
		atomic_store(&g_canary[k].measuring, 0);
		ck_assert_int_eq(pthread_create(&g_canary[k].thread, NULL,
						canary_main, &g_canary[k]), 0);
	}
	for (k = 0; k < g_ncanary; k++)
		ck_assert_msg(h_wait_atomic(&g_canary[k].measuring, 1, WAIT_MS),
			      "stall canary %d not running after %d ms", k,
			      WAIT_MS);
}

static inline void canaries_stop(void)
{
	uint64_t now = h_now_ns(), end = now + 10000000000ull;
	int k;

	/* A stall that just ended is logged once its canary has woken up
	 * since: wait (bounded) for every canary to do so. */
	for (k = 0; k < g_ncanary; k++)
		while (atomic_load(&g_canary[k].seen) < now &&
		       (int64_t)(end - h_now_ns()) > 0)
			h_sleep_ms(1);
	atomic_store(&g_canary_stop, 1);
	for (k = 0; k < g_ncanary; k++)
		ck_assert_int_eq(pthread_join(g_canary[k].thread, NULL), 0);
}

/* True if a canary logged a stall overlapping [from, to]. */
static inline bool stalled_during(uint64_t from, uint64_t to)
{
	int k;

	for (k = 0; k < g_ncanary; k++) {
		unsigned n = atomic_load(&g_canary[k].n), j;

		for (j = n > STALL_LOG ? n - STALL_LOG : 0; j < n; j++)
			if (g_canary[k].from[j % STALL_LOG] < to &&
			    g_canary[k].to[j % STALL_LOG] > from)
				return true;
	}
	return false;
}

/* Slow calls: kept for judging once the canaries are stopped. */
struct slow_log {
	long n;
	uint64_t from[SLOW_KEEP];
	uint64_t to[SLOW_KEEP];
	long iter[SLOW_KEEP];
};

static inline void slow_add(struct slow_log *s, long iter, uint64_t from,
		     uint64_t to)
{
	if (s->n < SLOW_KEEP) {
		s->from[s->n] = from;
		s->to[s->n] = to;
		s->iter[s->n] = iter;
	}
	s->n++;
}

/* Stop the canaries; returns the slow calls no stall explains. */
static inline long slow_judge(const char *test, const struct slow_log *s)
{
	long k, starved = 0;

	canaries_stop();
	if (s->n > SLOW_KEEP)
		return s->n;	/* far too many to be the machine */
	for (k = 0; k < s->n; k++) {
		if (stalled_during(s->from[k], s->to[k])) {
			starved++;
			printf("%s: iteration %ld: slow while the machine "
			       "stalled the test's threads (excused)\n", test,
			       s->iter[k]);
		}
	}
	fflush(stdout);
	return s->n - starved;
}

/* ------------------------------------------------------------ helpers */

/* True if r is a cancel's reason. */
static inline bool is_reason(long r)
{
	return r == -ECANCELED || r == -ETIMEDOUT;
}

/* The defaults, with resend_us, and max_workers (0: no limit). */
static inline void configure(unsigned max_workers, unsigned resend_us)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.max_workers = max_workers;
	cfg.resend_us = resend_us;
	ck_assert_int_eq(intr_configure(&cfg), 0);
}

/* Bytes still sitting in a pipe. */
static inline int pipe_avail(int fd)
{
	int n = -1;

	ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

/* Write c to fd. */
static inline void write_char(int fd, char c)
{
	ck_assert_int_eq(write(fd, &c, 1), 1);
}

/* Sleep ns nanoseconds, resuming after signals.  No Check. */
static inline void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait, bounded, until task t is done; fail naming the iteration if not. */
static inline void wait_done(intr_task *t, long iter, const char *what)
{
	int fd = host_task_fd(t);
	int ret;

	ck_assert_int_ge(fd, 0);
	ret = h_poll_in(fd, WAIT_MS);
	if (ret == 0)
		ck_abort_msg("iteration %ld (%s): call not done within "
			     "%d ms (lost cancel?)", iter, what, WAIT_MS);
	if (ret < 0)
		ck_assert_int_eq(errno, EINTR);
}

/* The bounded join every iteration uses. */
static inline int join_bounded(intr_task *t, void **res, long iter,
			       const char *what)
{
	wait_done(t, iter, what);
	return h_join_within(t, res, WAIT_MS);
}

/* Wait, bounded, until a deadline has cancelled tok. */
static inline void wait_reason(intr_token *tok, int reason)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	while (intr_token_reason(tok) != reason) {
		ck_assert_msg((int64_t)(end - h_now_ns()) > 0,
			      "token reason %d, not %d, after %d ms",
			      intr_token_reason(tok), reason, WAIT_MS);
		sleep_ns(10000);
	}
}

/*
 * Failures inside a body (or a finalizer, or a helper thread) are recorded
 * here and asserted by the test thread after the join.
 */
struct bfail {
	int n;
	char first[256];
};

static inline void bfail_add(struct bfail *f, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void bfail_add(struct bfail *f, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (f->n++ < MAX_REPORTS) {
		printf("  line %d: %s\n", line, msg);
		fflush(stdout);
	}
	if (f->n == 1)
		snprintf(f->first, sizeof(f->first), "line %d: %.200s", line,
			 msg);
}

#define BCHECK(f, cond, ...)						\
	do {								\
		if (!(cond))						\
			bfail_add((f), __LINE__, __VA_ARGS__);		\
	} while (0)

/* var = expr, with errno set to a sentinel before and checked after. */
#define CALL(f, var, expr)						\
	do {								\
		errno = MAGIC_ERRNO;					\
		(var) = (expr);						\
		BCHECK((f), errno == MAGIC_ERRNO,			\
		       "%s changed errno to %d", #expr, errno);		\
	} while (0)

#define BFAIL_ASSERT(f)							\
	ck_assert_msg((f)->n == 0, "%d checks failed, first: %s",	\
		      (f)->n, (f)->first)

/* ------------------------------------------------------------ schedule */

/* When the cancel lands, relative to the call. */
enum when {
	W_BEFORE,	/* token cancelled before intr_spawn */
	W_RIGHT_AFTER,	/* cancelled as soon as intr_spawn returns */
	W_AT,		/* cancelled 0-50 us after intr_spawn */
	W_AFTER,	/* body released and done before the cancel */
	W_AFTER_RACE,	/* body released, cancelled 0-50 us later */
	W_NR
};

static const char *const when_name[W_NR] = {
	[W_BEFORE] = "cancel before spawn",
	[W_RIGHT_AFTER] = "cancel right after spawn",
	[W_AT] = "cancel 0-50 us after spawn",
	[W_AFTER] = "cancel after the body returned",
	[W_AFTER_RACE] = "release, then cancel 0-50 us later",
};

static inline enum when pick_when(struct h_rng *r, bool with_release)
{
	uint64_t x = h_rng_below(r, 100);

	if (x < 10)
		return W_BEFORE;
	if (x < 25)
		return W_RIGHT_AFTER;
	if (!with_release || x < 65)
		return W_AT;
	if (x < 75)
		return W_AFTER;
	return W_AFTER_RACE;
}

/* How the cancel is issued. */
enum how {
	HOW_TOKEN,	/* intr_token_cancel */
	HOW_TASK,	/* intr_task_cancel */
	HOW_DEADLINE,	/* intr_token_cancel_after: reason -ETIMEDOUT */
};

static inline enum how pick_how(struct h_rng *r, enum when w)
{
	uint64_t x = h_rng_below(r, 8);

	switch (w) {
	case W_BEFORE:
		return x == 0 ? HOW_DEADLINE : HOW_TOKEN;
	case W_RIGHT_AFTER:
	case W_AT:
		return x == 0 ? HOW_DEADLINE : x == 1 ? HOW_TASK : HOW_TOKEN;
	default:
		return x < 2 ? HOW_TASK : HOW_TOKEN;
	}
}

/* ------------------------------------------------------------ bodies */

/* What a body reports about itself (common to every race case). */
struct call {
	uint64_t gap_ns;	/* set by the test */
	bool ran;
	pid_t tid;
	uint64_t t_enter;	/* body started (before the gap) */
	uint64_t t_call;	/* first wrapper call about to start */
	uint64_t t_ret;		/* just before the body returned */
	long nwrap;		/* wrapper calls made */
	long wret;		/* what the last one returned */
	bool done;		/* finished its work by itself */
	bool woken;		/* ended by its intr_on_cancel wake */
	const char *err_what;	/* an unexpected result, if any */
	long err;
};

static inline void body_enter(struct call *a)
{
	a->ran = true;
	a->tid = h_gettid();
	body_pin();
	a->t_enter = h_now_ns();
	if (a->gap_ns)
		h_spin_ns(a->gap_ns);
	a->t_call = h_now_ns();
	errno = MAGIC_ERRNO;
}

static inline void body_fail(struct call *a, const char *what, long ret);

/* After each wrapper call: record its result; errno must be untouched. */
static inline void body_note(struct call *a, long ret)
{
	a->nwrap++;
	a->wret = ret;
	if (errno != MAGIC_ERRNO)
		body_fail(a, "errno changed by the wrapper, to", errno);
	errno = MAGIC_ERRNO;
}

static inline void body_fail(struct call *a, const char *what, long ret)
{
	if (!a->err_what) {
		a->err_what = what;
		a->err = ret;
	}
}

/* ------------------------------------------------------------ tally */

/*
 * Outcome counts of one test.  The first block is common; the wrapper
 * suites fill the second (printed by print_tally), check-race's plain
 * calls the third (printed by its own report).
 */
struct tally {
	long n[W_NR];
	long cancelled[W_NR];	/* returned the reason */
	long completed[W_NR];	/* returned 0 */
	long skipped;		/* body never ran */
	long in_gap;		/* cancel wholly between body start (or
				 * check) and call */
	long bad;		/* iterations that broke a rule */
	/* wrapper calls */
	long by_wrapper;	/* cancelled while running, wrapper said so */
	long by_wake;		/* ended by an intr_on_cancel wake */
	long deadline;		/* cancelled through a deadline */
	long by_task;		/* through intr_task_cancel */
	long slow;		/* joins that took more than SLOW_NS */
	struct slow_log slows;
	uint64_t max_ns;	/* longest spawn-to-join */
	/* plain calls */
	long eintr;		/* EINTR seen by bodies */
	long spurious;		/* EINTR while the call was not cancelled */
};

/* Describe a broken iteration (the first MAX_REPORTS) and count it. */

static inline void bad(struct tally *t, long iter, enum when w,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline void bad(struct tally *t, long iter, enum when w,
		       const char *fmt, ...)
{
	va_list ap;

	if (t->bad++ >= MAX_REPORTS)
		return;
	printf("  iteration %ld (%s): ", iter, when_name[w]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Start a tally's report line: the test, then the counts per when. */
static inline void print_when_counts(const char *test, const struct tally *t)
{
	int w;

	printf("%s:", test);
	for (w = 0; w < W_NR; w++)
		if (t->n[w])
			printf(" [%s: %ld, %ld cancelled, %ld completed]",
			       when_name[w], t->n[w], t->cancelled[w],
			       t->completed[w]);
}

/* Report a wrapper suite's tally. */
static inline void print_tally(const char *test, const struct tally *t)
{
	print_when_counts(test, t);
	printf(" skipped %ld, reported by the wrapper %ld, by a wake %ld, "
	       "deadlines %ld, task cancels %ld, in the gap %ld, "
	       "joins > 500 ms %ld, longest %" PRIu64 " us, broken %ld\n",
	       t->skipped, t->by_wrapper, t->by_wake, t->deadline, t->by_task,
	       t->in_gap, t->slow, t->max_ns / 1000, t->bad);
	fflush(stdout);
}

/* Cancel the call as how says (not HOW_DEADLINE); returns h_now_ns() after. */
static inline uint64_t do_cancel(intr_token *tok, intr_task *task,
				 enum how how)
{
	if (how == HOW_TASK)
		ck_assert_int_eq(host_task_cancel(task), 0);
	else
		ck_assert_int_eq(intr_token_cancel(tok), 0);
	return h_now_ns();
}

/* A data writer for the data races: writes total bytes into fd in random
 * chunks with random pauses, counting what went in; finished is set when
 * it is done. */
struct writer {
	int fd;
	int total;
	int written;
	int err;
	uint64_t seed;
	atomic_int finished;
};

static inline void *writer_main(void *p)
{
	struct writer *w = p;
	struct h_rng r = { .s = w->seed };
	char buf[512];

	memset(buf, 'd', sizeof(buf));
	while (w->written < w->total) {
		int chunk = 1 + (int)h_rng_below(&r, sizeof(buf));
		ssize_t n;

		if (chunk > w->total - w->written)
			chunk = w->total - w->written;
		n = write(w->fd, buf, (size_t)chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;
			break;
		}
		w->written += (int)n;
		if (h_rng_below(&r, 4) == 0)
			h_spin_ns(h_rng_below(&r, 5000));
	}
	atomic_store(&w->finished, 1);
	return NULL;
}

/* ------------------------------------------------------------ SIGPROF */

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* A per-thread 1 kHz SIGPROF timer aimed at the calling thread. */
static inline int prof_timer_start(timer_t *tm)
{
	struct itimerspec its = {
		.it_interval = { .tv_sec = 0, .tv_nsec = 1000000 },
		.it_value = { .tv_sec = 0, .tv_nsec = 1000000 },
	};
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGPROF;
	sev.sigev_notify_thread_id = h_gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, tm) < 0)
		return errno;
	if (timer_settime(*tm, 0, &its, NULL) < 0) {
		int e = errno;

		timer_delete(*tm);
		return e;
	}
	return 0;
}

/* The members every suite's struct race_iter starts with, which
 * race-run.h reads: the body's record, when the cancel lands, the reason
 * it stands for, the spin before it, when it had returned (0: none known)
 * and the suite's random numbers. */
#define RACE_ITER_COMMON						\
	struct call a;							\
	enum when w;							\
	int reason;							\
	uint64_t spin;							\
	uint64_t t_cancel;						\
	struct h_rng *r

#endif
