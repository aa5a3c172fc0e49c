/* SPDX-License-Identifier: MIT */
/*
 * Wrapper suite: the race-free blocking calls (intr_syscall, intr_read,
 * intr_write, intr_poll, intr_accept, intr_sleep, intr_cond_wait) and
 * intr_on_cancel.
 *
 * Race tests run many iterations with the cancel landing before the call
 * (token cancelled, or deadline passed, before intr_spawn), right after
 * intr_spawn, a random 0-50 us after it, and after the body finished by
 * itself (or was released and then cancelled 0-50 us later).  Unlike the
 * plain-read tests of check-race.c, every body calls the wrapper once (or
 * loops only while the wrapper returns a result that is not the reason) and
 * never asks intr_cancelled(): the reason must come straight from the
 * wrapper, and the test checks that it did in every iteration cancelled
 * while the body ran.
 *
 * In half the iterations the body spins a random 0-50 us ("gap") before the
 * wrapper, so that the first interrupt signal is handled before the wrapper
 * is entered.  The main race tests run with resend_us = 1 s: the wrapper's
 * own window must catch such a cancel, without the library's re-send.
 * Every wait is bounded; no iteration may take more than 500 ms (a count
 * of hang-like events, not a latency bound), unless stall canaries show
 * that the machine itself stalled the test's threads then.
 *
 * Also: intr_on_cancel (its wake runs at most once, only for a cancelled
 * call, off the cancelling thread, outside signal handlers, and finishes
 * before the call returns), success paths, -errno results with errno
 * untouched, every wrapper on an already cancelled call, -EINVAL off the
 * worker, SIGPROF at 1 kHz (no -EINTR escapes, no result is lost), and
 * intr_sleep cancelled wherever the cancel lands, with no re-send.
 *
 * With two CPUs or more the test thread is pinned to one CPU and the
 * bodies to another, so that the cancel really lands in the gap.
 *
 * INTR_TEST_SEED=<n> repeats a run's cancel schedule.
 */
#include "config.h"
#include "race.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

#define RACE_ITERS	20000		/* syscall, read, data, cond, sleep */
#define SIDE_ITERS	3000		/* poll, accept, write */
#define ONCANCEL_ITERS	5000
/*
 * A cancelled sleep lasts 2 s, longer than the 1 s re-send: a cancel the
 * window lost shows as a slow call (over 500 ms), and a machine stall has
 * to last 2 s to let the sleep end by itself before its cancel lands.
 * (With 10 ms, a run-queue wait of 10 ms on a loaded machine was enough
 * for the kernel to finish the sleep first and return 0; a deadline
 * fired by a loaded service thread may also come 10 ms late.)
 */
#define LONG_SLEEP_NS	2000000000ull
#define SHORT_SLEEP_NS	100000ull	/* 100 us */
#define SHORT_SLEEPS	2000
#define DATA_MAX	8192		/* bytes per data iteration (< pipe) */
#define PROF_RUN_NS	2000000000ull	/* SIGPROF test: about 2 s of calls */
#define PROF_DELAY_NS	3000000ull	/* data/broadcast 3 ms after spawn */
#define PROF_SLEEP_NS	5000000ull
#define PROF_POLL_MS	5
#define TEST_TIMEOUT	120		/* seconds, per test */

/*
 * Where the library was built with an assembly window (x86-64, aarch64;
 * the build says so in INTR_TEST_WINDOW) the wrappers close the race
 * without a re-send, so make the first re-send 1 s away and count joins
 * that took more than 500 ms.  The portable C window promises only the
 * re-send.
 */
#if INTR_TEST_WINDOW
#define RESEND_US	1000000
#else
#define RESEND_US	50
#endif

/* ------------------------------------------------------------ helpers */

/* A listening TCP socket on 127.0.0.1, port chosen by the kernel. */
static int listen_local(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr->sin_port = 0;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	ck_assert_int_eq(listen(fd, 128), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* A client connected to addr (the connection waits in the backlog). */
static int connect_local(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (const struct sockaddr *)addr,
				 sizeof(*addr)), 0);
	return fd;
}

/* Accept and close every connection waiting on lfd; returns how many. */
static int drain_listener(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int n = 0;

	while (poll(&p, 1, 0) > 0) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		ck_assert_int_ge(fd, 0);
		close(fd);
		n++;
	}
	return n;
}

static unsigned short local_port(int fd, bool peer)
{
	struct sockaddr_in a;
	struct sockaddr *sa = (struct sockaddr *)&a;
	socklen_t len = sizeof(a);

	memset(&a, 0, sizeof(a));
	if (peer)
		ck_assert_int_eq(getpeername(fd, sa, &len), 0);
	else
		ck_assert_int_eq(getsockname(fd, sa, &len), 0);
	return ntohs(a.sin_port);
}

static void init_errorcheck_mutex(pthread_mutex_t *m)
{
	pthread_mutexattr_t ma;

	ck_assert_int_eq(pthread_mutexattr_init(&ma), 0);
	ck_assert_int_eq(pthread_mutexattr_settype(&ma,
						   PTHREAD_MUTEX_ERRORCHECK), 0);
	ck_assert_int_eq(pthread_mutex_init(m, &ma), 0);
	pthread_mutexattr_destroy(&ma);
}

/* -------------------------------------------------- the race machinery */

/* One iteration; the body's argument.  Fields per case below the line. */
struct race_iter {
	RACE_ITER_COMMON;
	/* ---- */
	int fds[2];
	int released;		/* bytes (or connections) given by the test */
	int bytes;		/* bytes the body consumed */
	bool use_syscall;	/* read via intr_syscall(SYS_read) */
	/* data */
	struct writer wr;
	pthread_t wr_thread;
	bool writer_first;
	bool writer_started;
	atomic_long got;
	/* poll */
	int timeout_ms;
	short revents;
	/* accept */
	int cfd;
	int afd;
	socklen_t alen;
	struct sockaddr_in peer;
	/* write */
	long filled;
	long drained;
	/* cond */
	pthread_mutex_t m;
	pthread_cond_t c;
	int pred;
	long wakeups;
	atomic_int waiting;	/* the body is about to wait, m held */
	int trylock;
	int unlock;
	/* sleep */
	uint64_t sleep_ns;
	uint64_t slept_ns;
	/* on_cancel */
	bool registered;
	atomic_int body_active;
	uint64_t wake_spin;	/* the wake spins this long after its write */
	atomic_int wake_started;
	atomic_int wake_runs;	/* finished */
	pid_t wake_tid;
	bool wake_in_body;
	int wake_err;
	long eintr;
};

#define RACE_ITER_INIT(it)	((it)->cfd = (it)->afd = -1)
#include "race-run.h"

/* ------------------------------------------ 1. one-byte read from a pipe */

static void *rd_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	char buf[8];
	long n;

	body_enter(a);
	if (it->use_syscall)
		n = intr_syscall(ctx, SYS_read, (long)it->fds[0], (long)buf,
				 (long)sizeof(buf));
	else
		n = intr_read(ctx, it->fds[0], buf, sizeof(buf));
	body_note(a, n);
	if (n == 1 && buf[0] == 'm') {
		it->bytes = 1;
		a->done = true;
	} else if (!is_reason(n)) {
		body_fail(a, it->use_syscall ? "intr_syscall(SYS_read)" :
			  "intr_read", n);
	}
	a->t_ret = h_now_ns();
	return it;
}

static void rd_prepare(struct race_iter *it)
{
	h_make_pipe(it->fds);
}

static void rd_prepare_syscall(struct race_iter *it)
{
	h_make_pipe(it->fds);
	it->use_syscall = true;
}

static void rd_release(struct race_iter *it)
{
	write_char(it->fds[1], 'm');
	it->released = 1;
}

static void rd_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	int left = pipe_avail(it->fds[0]);

	(void)ret;
	if (it->bytes + left != it->released)
		bad(t, i, it->w, "bytes: read %d + left %d != written %d",
		    it->bytes, left, it->released);
}

static void pipe_cleanup(struct race_iter *it)
{
	h_close_pipe(it->fds);
}

static const struct race_case case_syscall_read = {
	.name = "race_syscall_read",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = true,
	.body = rd_body,
	.prepare = rd_prepare_syscall,
	.release_fn = rd_release,
	.check = rd_check,
	.cleanup = pipe_cleanup,
};

static const struct race_case case_read = {
	.name = "race_read",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = true,
	.body = rd_body,
	.prepare = rd_prepare,
	.release_fn = rd_release,
	.check = rd_check,
	.cleanup = pipe_cleanup,
};

START_TEST(race_syscall_read)
{
	host_set(_i);
	run_race(&case_syscall_read, true);
}
END_TEST

START_TEST(race_read)
{
	host_set(_i);
	run_race(&case_read, true);
}
END_TEST

/* ------------------------------- 2. data: no byte lost to a cancel */

static long g_written, g_read, g_left;

static void *data_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	char buf[256];

	body_enter(a);
	for (;;) {
		ssize_t n = intr_read(ctx, it->fds[0], buf, sizeof(buf));

		body_note(a, n);
		if (n > 0) {
			atomic_fetch_add(&it->got, (long)n);
			continue;
		}
		if (!is_reason(n))
			body_fail(a, "intr_read", n);
		break;
	}
	a->t_ret = h_now_ns();
	return it;
}

static void data_start_writer(struct race_iter *it)
{
	ck_assert_int_eq(pthread_create(&it->wr_thread, NULL, writer_main,
					&it->wr), 0);
	it->writer_started = true;
}

static void data_prepare(struct race_iter *it)
{
	if (it->w == W_AFTER_RACE)	/* the same as W_AT here */
		it->w = W_AT;
	h_make_pipe(it->fds);
	it->wr.fd = it->fds[1];
	it->wr.total = 1 + (int)h_rng_below(it->r, DATA_MAX);
	it->wr.seed = h_rng_next(it->r);
	it->writer_first = h_rng_below(it->r, 2);
	it->a.gap_ns /= 4;
	if (it->writer_first)
		data_start_writer(it);
}

static void data_spawned(struct race_iter *it)
{
	if (!it->writer_first)
		data_start_writer(it);
}

/* W_AFTER: cancel once every byte was written and read. */
static void data_release(struct race_iter *it)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;

	while (!atomic_load(&it->wr.finished) ||
	       atomic_load(&it->got) < it->wr.total) {
		ck_assert_msg((int64_t)(end - h_now_ns()) > 0,
			      "body read %ld of %d bytes in %d ms",
			      atomic_load(&it->got), it->wr.total, WAIT_MS);
		sleep_ns(10000);
	}
}

static void data_check(struct race_iter *it, struct tally *t, long i,
		       int ret)
{
	long got = atomic_load(&it->got);
	int left;

	(void)ret;
	ck_assert_int_eq(pthread_join(it->wr_thread, NULL), 0);
	it->writer_started = false;
	ck_assert_int_eq(it->wr.err, 0);
	ck_assert_int_eq(it->wr.written, it->wr.total);
	left = pipe_avail(it->fds[0]);
	g_written += it->wr.written;
	g_read += got;
	g_left += left;
	if (got + left != it->wr.written)
		bad(t, i, it->w, "bytes: read %ld + left in pipe %d != "
		    "written %d", got, left, it->wr.written);
}

static void data_fini(void)
{
	printf("race_data_read: %ld bytes written, %ld read by bodies, "
	       "%ld left in pipes\n", g_written, g_read, g_left);
	fflush(stdout);
	ck_assert_int_eq(g_read + g_left, g_written);
}

static const struct race_case case_data = {
	.name = "race_data_read",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = false,
	.body = data_body,
	.prepare = data_prepare,
	.spawned = data_spawned,
	.release_fn = data_release,
	.check = data_check,
	.cleanup = pipe_cleanup,
	.test_fini = data_fini,
};

START_TEST(race_data_read)
{
	host_set(_i);
	/* data in the pipe keeps the body out of the gap: not required */
	run_race(&case_data, false);
}
END_TEST

/* ------------------------------------------------ 3. intr_cond_wait */

static long g_cond_wakeups;

static void *cond_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	int e;

	e = pthread_mutex_lock(&it->m);
	body_enter(a);		/* the gap is spent holding the mutex */
	if (e) {
		body_fail(a, "pthread_mutex_lock", e);
		return it;
	}
	for (;;) {
		int n;

		if (it->pred) {
			a->done = true;
			break;
		}
		atomic_store(&it->waiting, 1);
		n = intr_cond_wait(ctx, &it->c, &it->m);
		body_note(a, n);
		if (n != 0) {
			if (!is_reason(n))
				body_fail(a, "intr_cond_wait", n);
			break;
		}
		if (!it->pred)
			it->wakeups++;
	}
	/* an error-checking mutex: trylock by its owner is EBUSY, unlock by
	 * anyone else EPERM */
	it->trylock = pthread_mutex_trylock(&it->m);
	it->unlock = pthread_mutex_unlock(&it->m);
	a->t_ret = h_now_ns();
	return it;
}

static void cond_prepare(struct race_iter *it)
{
	init_errorcheck_mutex(&it->m);
	ck_assert_int_eq(pthread_cond_init(&it->c, NULL), 0);
}

/*
 * W_AFTER: once the body has set waiting (under m), taking m means it is
 * inside intr_cond_wait: only the broadcast can end it.  W_AFTER_RACE sets
 * the predicate at once, sometimes before the body waits at all.
 */
static void cond_release(struct race_iter *it)
{
	if (it->w == W_AFTER)
		ck_assert_msg(h_wait_atomic(&it->waiting, 1, WAIT_MS),
			      "body not waiting after %d ms", WAIT_MS);
	ck_assert_int_eq(pthread_mutex_lock(&it->m), 0);
	it->pred = 1;
	ck_assert_int_eq(pthread_cond_broadcast(&it->c), 0);
	ck_assert_int_eq(pthread_mutex_unlock(&it->m), 0);
	it->released = 1;
}

static void cond_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	int e;

	(void)ret;
	g_cond_wakeups += it->wakeups;
	if (it->a.ran && (it->trylock != EBUSY || it->unlock != 0))
		bad(t, i, it->w, "mutex not held when intr_cond_wait "
		    "returned %ld: trylock %d, unlock %d", it->a.wret,
		    it->trylock, it->unlock);
	if (it->a.done && !it->pred)
		bad(t, i, it->w, "body finished without the predicate");
	e = pthread_mutex_trylock(&it->m);
	if (e != 0)
		bad(t, i, it->w, "mutex still held after the call: trylock %d",
		    e);
	else
		ck_assert_int_eq(pthread_mutex_unlock(&it->m), 0);
}

static void cond_cleanup(struct race_iter *it)
{
	ck_assert_int_eq(pthread_cond_destroy(&it->c), 0);
	ck_assert_int_eq(pthread_mutex_destroy(&it->m), 0);
}

static void cond_fini(void)
{
	printf("intr_cond_wait: %ld wake-ups without the predicate\n",
	       g_cond_wakeups);
	fflush(stdout);
}

static const struct race_case case_cond_never = {
	.name = "race_cond_wait_never",
	.iters = RACE_ITERS,
	.release = false,
	.finishes = true,
	.body = cond_body,
	.prepare = cond_prepare,
	.check = cond_check,
	.cleanup = cond_cleanup,
	.test_fini = cond_fini,
};

static const struct race_case case_cond_set = {
	.name = "race_cond_wait_broadcast",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = true,
	.body = cond_body,
	.prepare = cond_prepare,
	.release_fn = cond_release,
	.check = cond_check,
	.cleanup = cond_cleanup,
	.test_fini = cond_fini,
};

START_TEST(race_cond_wait_never)
{
	host_set(_i);
	run_race(&case_cond_never, true);
}
END_TEST

START_TEST(race_cond_wait_broadcast)
{
	host_set(_i);
	run_race(&case_cond_set, true);
}
END_TEST

/* ---------------------------------------------------- 4. intr_sleep */

static long g_short_sleeps;

static void *sleep_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	int n;

	body_enter(a);
	n = intr_sleep(ctx, it->sleep_ns);
	a->t_ret = h_now_ns();
	body_note(a, n);
	if (n == 0) {
		a->done = true;
		it->slept_ns = a->t_ret - a->t_call;
	} else if (!is_reason(n)) {
		body_fail(a, "intr_sleep", n);
	}
	return it;
}

/* Long sleeps are cancelled; released iterations sleep 0-50 us. */
static void sleep_prepare(struct race_iter *it)
{
	if (it->w == W_AFTER || it->w == W_AFTER_RACE)
		it->sleep_ns = h_rng_below(it->r, MAX_SPIN_NS + 1);
	else
		it->sleep_ns = LONG_SLEEP_NS;
}

static void sleep_release(struct race_iter *it)
{
	(void)it;		/* a short sleep ends by itself */
}

static void sleep_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	(void)ret;
	/* a cancel done 1 ms before the sleep's end must have cut it short */
	if (it->a.done && it->t_cancel &&
	    it->t_cancel + 1000000 < it->a.t_call + it->sleep_ns)
		bad(t, i, it->w, "intr_sleep(%" PRIu64 " ns) slept through a "
		    "cancel made %" PRId64 " us after it started",
		    it->sleep_ns, (int64_t)(it->t_cancel - it->a.t_call) / 1000);
	if (it->a.done) {
		g_short_sleeps++;
		if (it->slept_ns < it->sleep_ns)
			bad(t, i, it->w, "intr_sleep(%" PRIu64 " ns) returned 0 "
			    "after %" PRIu64 " ns", it->sleep_ns, it->slept_ns);
	}
}

static void sleep_fini(void)
{
	printf("race_sleep: %ld sleeps completed\n", g_short_sleeps);
	fflush(stdout);
}

static const struct race_case case_sleep = {
	.name = "race_sleep",
	.iters = RACE_ITERS,
	.release = true,
	.finishes = true,
	.body = sleep_body,
	.prepare = sleep_prepare,
	.release_fn = sleep_release,
	.check = sleep_check,
	.test_fini = sleep_fini,
};

START_TEST(race_sleep)
{
	host_set(_i);
	run_race(&case_sleep, true);
}
END_TEST

/* ----------------------------------------------------- 5. intr_poll */

static void *poll_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	struct pollfd pfd = { .fd = it->fds[0], .events = POLLIN };
	int n;

	body_enter(a);
	n = intr_poll(ctx, &pfd, 1, it->timeout_ms);
	body_note(a, n);
	it->revents = pfd.revents;
	if (n == 1 && (pfd.revents & POLLIN))
		a->done = true;
	else if (!is_reason(n))
		body_fail(a, "intr_poll", n);
	a->t_ret = h_now_ns();
	return it;
}

static void poll_prepare(struct race_iter *it)
{
	h_make_pipe(it->fds);
	it->timeout_ms = h_rng_below(it->r, 2) ? -1 : 10000;
}

static void poll_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	int left = pipe_avail(it->fds[0]);

	(void)ret;
	if (left != it->released)
		bad(t, i, it->w, "poll: %d bytes left, %d written", left,
		    it->released);
}

static const struct race_case case_poll = {
	.name = "race_poll",
	.iters = SIDE_ITERS,
	.release = true,
	.finishes = true,
	.body = poll_body,
	.prepare = poll_prepare,
	.release_fn = rd_release,
	.check = poll_check,
	.cleanup = pipe_cleanup,
};

START_TEST(race_poll)
{
	host_set(_i);
	run_race(&case_poll, true);
}
END_TEST

/* --------------------------------------------------- 6. intr_accept */

static int g_lfd = -1;
static struct sockaddr_in g_laddr;
static long g_accepted, g_pending;

static void accept_init(void)
{
	g_lfd = listen_local(&g_laddr);
}

static void *accept_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	int n;

	body_enter(a);
	it->alen = sizeof(it->peer);
	n = intr_accept(ctx, g_lfd, (struct sockaddr *)&it->peer, &it->alen);
	body_note(a, n);
	if (n >= 0) {
		it->afd = n;
		a->done = true;
	} else if (!is_reason(n)) {
		body_fail(a, "intr_accept", n);
	}
	a->t_ret = h_now_ns();
	return it;
}

static void accept_prepare(struct race_iter *it)
{
	(void)it;
}

static void accept_release(struct race_iter *it)
{
	it->cfd = connect_local(&g_laddr);
	it->released = 1;
}

static void accept_check(struct race_iter *it, struct tally *t, long i,
			 int ret)
{
	int pending = drain_listener(g_lfd);
	int accepted = it->afd >= 0;

	(void)ret;
	g_accepted += accepted;
	g_pending += pending;
	if (accepted + pending != it->released)
		bad(t, i, it->w, "connections: accepted %d + pending %d != "
		    "made %d", accepted, pending, it->released);
	if (accepted && it->cfd >= 0) {
		if (it->alen != sizeof(struct sockaddr_in) ||
		    it->peer.sin_family != AF_INET ||
		    ntohs(it->peer.sin_port) != local_port(it->cfd, false))
			bad(t, i, it->w, "accepted peer address wrong");
		if (local_port(it->afd, true) != local_port(it->cfd, false))
			bad(t, i, it->w, "accepted fd is not the client's "
			    "connection");
	}
}

static void accept_cleanup(struct race_iter *it)
{
	if (it->afd >= 0)
		close(it->afd);
	if (it->cfd >= 0)
		close(it->cfd);
}

static void accept_fini(void)
{
	printf("race_accept: %ld accepted by bodies, %ld left pending\n",
	       g_accepted, g_pending);
	fflush(stdout);
	close(g_lfd);
}

static const struct race_case case_accept = {
	.name = "race_accept",
	.iters = SIDE_ITERS,
	.release = true,
	.finishes = true,
	.body = accept_body,
	.test_init = accept_init,
	.prepare = accept_prepare,
	.release_fn = accept_release,
	.check = accept_check,
	.cleanup = accept_cleanup,
	.test_fini = accept_fini,
};

START_TEST(race_accept)
{
	host_set(_i);
	run_race(&case_accept, true);
}
END_TEST

/* ------------------------------------------- 7. intr_write to a full pipe */

static void *write_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	ssize_t n;

	body_enter(a);
	n = intr_write(ctx, it->fds[1], "w", 1);
	body_note(a, n);
	if (n == 1)
		a->done = true;
	else if (!is_reason(n))
		body_fail(a, "intr_write", n);
	a->t_ret = h_now_ns();
	return it;
}

/* Fill a (small) pipe until a non-blocking write would block. */
static long fill_pipe(int fds[2])
{
	static char buf[65536];
	long filled = 0;
	int fl;

	fcntl(fds[1], F_SETPIPE_SZ, 4096);
	fl = fcntl(fds[1], F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fds[1], F_SETFL, fl | O_NONBLOCK), 0);
	for (;;) {
		ssize_t n = write(fds[1], buf, sizeof(buf));

		if (n > 0) {
			filled += n;
			continue;
		}
		ck_assert_int_eq((int)n, -1);
		if (errno != EAGAIN)
			break;
		n = write(fds[1], buf, 1);
		if (n == 1) {
			filled++;
			continue;
		}
		break;
	}
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fcntl(fds[1], F_SETFL, fl), 0);
	return filled;
}

static long drain_pipe(int fd)
{
	char buf[4096];
	long total = 0;
	int avail = pipe_avail(fd);

	while (avail > 0) {
		ssize_t n = read(fd, buf, avail < (int)sizeof(buf) ?
				 (size_t)avail : sizeof(buf));

		ck_assert_int_gt((int)n, 0);
		total += n;
		avail -= (int)n;
	}
	return total;
}

static void write_prepare(struct race_iter *it)
{
	h_make_pipe(it->fds);
	it->filled = fill_pipe(it->fds);
}

static void write_release(struct race_iter *it)
{
	it->drained = drain_pipe(it->fds[0]);
	it->released = 1;
}

static void write_check(struct race_iter *it, struct tally *t, long i,
			int ret)
{
	long left = pipe_avail(it->fds[0]);
	long wrote = it->a.wret == 1;

	(void)ret;
	if (it->drained + left != it->filled + wrote)
		bad(t, i, it->w, "bytes: drained %ld + left %ld != filled %ld "
		    "+ written by the body %ld", it->drained, left, it->filled,
		    wrote);
}

static const struct race_case case_write = {
	.name = "race_write",
	.iters = SIDE_ITERS,
	.release = true,
	.finishes = true,
	.body = write_body,
	.prepare = write_prepare,
	.release_fn = write_release,
	.check = write_check,
	.cleanup = pipe_cleanup,
};

START_TEST(race_write)
{
	host_set(_i);
	run_race(&case_write, true);
}
END_TEST

/* ------------------------------------------------- 8. intr_on_cancel */

static pid_t g_main_tid;
static atomic_long g_wake_total;
static long g_wake_expected;
static long g_wake_eintr;

/*
 * The wake: writes the byte the body's EINTR-proof read is waiting for,
 * then (half the time) keeps running for up to 30 us while the body
 * returns: the call must not return before the wake has finished.
 */
static void oc_wake(void *p)
{
	struct race_iter *it = p;
	pid_t tid = h_gettid();

	atomic_fetch_add(&g_wake_total, 1);
	atomic_fetch_add(&it->wake_started, 1);
	if (tid == it->a.tid && atomic_load(&it->body_active))
		it->wake_in_body = true;
	if (write(it->fds[1], "w", 1) != 1)
		it->wake_err = errno;
	if (it->wake_spin)
		h_spin_ns(it->wake_spin);
	it->wake_tid = tid;
	atomic_fetch_add(&it->wake_runs, 1);
}

/* Blocked where no signal helps: read() that ignores EINTR. */
static void *oc_body(intr_ctx *ctx, void *p)
{
	struct race_iter *it = p;
	struct call *a = &it->a;
	ssize_t r;
	char c = 0;
	int n;

	body_enter(a);
	n = intr_on_cancel(ctx, oc_wake, it);
	body_note(a, n);
	if (n != 0) {
		if (!is_reason(n))
			body_fail(a, "intr_on_cancel", n);
		a->t_ret = h_now_ns();
		return it;
	}
	it->registered = true;
	atomic_store(&it->body_active, 1);
	while ((r = read(it->fds[0], &c, 1)) < 0 && errno == EINTR)
		it->eintr++;
	atomic_store(&it->body_active, 0);
	if (r == 1 && c == 'm') {
		it->bytes = 1;
		a->done = true;
	} else if (r == 1 && c == 'w') {
		it->bytes = 1;
		a->woken = true;
	} else {
		body_fail(a, "read", r < 0 ? -errno : r);
	}
	a->t_ret = h_now_ns();
	return it;
}

static void oc_prepare(struct race_iter *it)
{
	h_make_pipe(it->fds);
	if (h_rng_below(it->r, 2))
		it->wake_spin = h_rng_below(it->r, 30001);
}

static void oc_init(void)
{
	g_main_tid = h_gettid();
}

static void oc_check(struct race_iter *it, struct tally *t, long i, int ret)
{
	int runs = atomic_load(&it->wake_runs);
	int started = atomic_load(&it->wake_started);
	int left = pipe_avail(it->fds[0]);

	g_wake_expected += runs;
	g_wake_eintr += it->eintr;
	if (started != runs)
		bad(t, i, it->w, "the call returned while its wake was still "
		    "running (%d started, %d finished)", started, runs);
	if (runs > 1)
		bad(t, i, it->w, "the wake ran %d times", runs);
	if (!it->registered && runs)
		bad(t, i, it->w, "a wake never registered ran");
	if (it->registered && ret == it->reason && runs != 1)
		bad(t, i, it->w, "cancelled before the body returned, but the "
		    "wake ran %d times before the join returned", runs);
	if (ret == 0 && runs)
		bad(t, i, it->w, "not cancelled, but the wake ran");
	if (runs && it->wake_tid == g_main_tid)
		bad(t, i, it->w, "the wake ran on the cancelling thread");
	if (it->wake_in_body)
		bad(t, i, it->w, "the wake ran on the body's thread while the "
		    "body was blocked (in a signal handler)");
	if (it->wake_err)
		bad(t, i, it->w, "the wake's write failed: %d", it->wake_err);
	if (it->bytes + left != it->released + runs)
		bad(t, i, it->w, "bytes: read %d + left %d != %d from the test "
		    "+ %d from the wake", it->bytes, left, it->released, runs);
}

static void oc_fini(void)
{
	sleep_ns(50000000);	/* a wake that runs late would show now */
	printf("race_on_cancel: %ld wakes ran, %ld EINTR ignored by the "
	       "bodies\n", atomic_load(&g_wake_total), g_wake_eintr);
	fflush(stdout);
	ck_assert_msg(atomic_load(&g_wake_total) == g_wake_expected,
		      "%ld wakes ran, but only %ld before their call returned",
		      atomic_load(&g_wake_total), g_wake_expected);
}

static const struct race_case case_on_cancel = {
	.name = "race_on_cancel",
	.iters = ONCANCEL_ITERS,
	.release = true,
	.finishes = true,
	.body = oc_body,
	.test_init = oc_init,
	.prepare = oc_prepare,
	.release_fn = rd_release,
	.check = oc_check,
	.cleanup = pipe_cleanup,
	.test_fini = oc_fini,
};

START_TEST(race_on_cancel)
{
	host_set(_i);
	run_race(&case_on_cancel, true);
}
END_TEST

/* Registering on an already cancelled call returns the reason, runs
 * nothing; a call that is never cancelled never runs its wake. */
struct ocb {
	atomic_int started;
	atomic_int go;
	int reg;
	int null_reg;
	bool was_cancelled;
	atomic_int runs;
	struct bfail f;
};

static void ocb_wake(void *p)
{
	struct ocb *o = p;

	atomic_fetch_add(&o->runs, 1);
}

static void *ocb_cancelled_body(intr_ctx *ctx, void *p)
{
	struct ocb *o = p;

	atomic_store(&o->started, 1);
	BCHECK(&o->f, h_wait_atomic(&o->go, 1, WAIT_MS), "no go");
	/* cancelled now, not acknowledged */
	o->reg = intr_on_cancel(ctx, ocb_wake, o);
	o->was_cancelled = intr_cancelled(ctx);
	return o;
}

static void *ocb_plain_body(intr_ctx *ctx, void *p)
{
	struct ocb *o = p;

	o->null_reg = intr_on_cancel(ctx, NULL, o);
	o->reg = intr_on_cancel(ctx, ocb_wake, o);
	return o;
}

START_TEST(oncancel_basic)
{
	int k;

	configure(0, RESEND_US);
	for (k = 0; k < 300; k++) {
		enum how how = (enum how)(k % 3);
		int reason = how == HOW_DEADLINE ? -ETIMEDOUT : -ECANCELED;
		struct ocb o;
		intr_token *tok;
		intr_task *task;
		void *res = NULL;

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		ck_assert_int_eq(intr_spawn(&task, tok, ocb_cancelled_body, &o),
				 0);
		ck_assert(h_wait_atomic(&o.started, 1, WAIT_MS));
		if (how == HOW_DEADLINE) {
			ck_assert_int_eq(intr_token_cancel_after(tok, 1000), 0);
			wait_reason(tok, -ETIMEDOUT);
		} else {
			do_cancel(tok, task, how);
		}
		atomic_store(&o.go, 1);
		ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), reason);
		ck_assert_ptr_eq(res, &o);
		BFAIL_ASSERT(&o.f);
		ck_assert_msg(o.reg == reason, "intr_on_cancel on a cancelled "
			      "call returned %d, expected %d", o.reg, reason);
		ck_assert(o.was_cancelled);
		ck_assert_int_eq(atomic_load(&o.runs), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
	for (k = 0; k < 1000; k++) {
		struct ocb o;
		intr_token *tok;
		intr_task *task;
		void *res = NULL;

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		ck_assert_int_eq(intr_spawn(&task, tok, ocb_plain_body, &o), 0);
		ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), 0);
		ck_assert_int_eq(o.null_reg, -EINVAL);
		ck_assert_int_eq(o.reg, 0);
		/* cancelling after the call is over runs nothing */
		ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(atomic_load(&o.runs), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
		ck_assert_int_eq(atomic_load(&o.runs), 0);
	}
}
END_TEST

/* --------------------------------------------- 9. success paths */

struct helper {
	int fd;			/* write a byte here, or connect */
	struct sockaddr_in addr;
	pthread_mutex_t *m;
	pthread_cond_t *c;
	int *pred;
	uint64_t delay_ns;
	long total;		/* bytes to read (drain helper) */
	long got;
	int cfd;
};

static void *helper_write_byte(void *p)
{
	struct helper *h = p;

	sleep_ns(h->delay_ns);
	if (write(h->fd, "h", 1) != 1)
		h->got = -1;
	return NULL;
}

static void *helper_connect(void *p)
{
	struct helper *h = p;

	sleep_ns(h->delay_ns);
	h->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->cfd >= 0 && connect(h->cfd, (struct sockaddr *)&h->addr,
				   sizeof(h->addr)) < 0) {
		close(h->cfd);
		h->cfd = -1;
	}
	return NULL;
}

static void *helper_broadcast(void *p)
{
	struct helper *h = p;

	sleep_ns(h->delay_ns);
	pthread_mutex_lock(h->m);
	*h->pred = 1;
	pthread_cond_broadcast(h->c);
	pthread_mutex_unlock(h->m);
	return NULL;
}

static void *helper_drain(void *p)
{
	struct helper *h = p;
	char buf[4096];

	while (h->got < h->total) {
		ssize_t n = read(h->fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		h->got += n;
	}
	return NULL;
}

struct succ {
	struct bfail f;
	uint64_t slept_min;	/* shortest short-sleep measured */
	long sleeps;
};

static void *success_body(intr_ctx *ctx, void *p)
{
	struct succ *s = p;
	struct bfail *f = &s->f;
	static char big[100000];
	char buf[64];
	int fds[2], lfd, r, k;
	long lr;
	ssize_t n;
	uint64_t t0, el;
	struct sockaddr_in laddr, peer;
	socklen_t plen;
	struct pollfd pfd[2];
	struct helper h;
	pthread_t th;
	pthread_mutex_t m;
	pthread_cond_t c;
	int pred = 0;

	h_make_pipe(fds);

	/* read, write */
	CALL(f, n, intr_write(ctx, fds[1], "hello", 5));
	BCHECK(f, n == 5, "intr_write returned %zd", n);
	CALL(f, n, intr_read(ctx, fds[0], buf, sizeof(buf)));
	BCHECK(f, n == 5 && !memcmp(buf, "hello", 5),
	       "intr_read returned %zd", n);

	/* a read that blocks until a helper writes */
	memset(&h, 0, sizeof(h));
	h.fd = fds[1];
	h.delay_ns = 5000000;
	pthread_create(&th, NULL, helper_write_byte, &h);
	CALL(f, n, intr_read(ctx, fds[0], buf, sizeof(buf)));
	BCHECK(f, n == 1 && buf[0] == 'h', "blocking intr_read returned %zd",
	       n);
	pthread_join(th, NULL);

	/* a blocking write larger than the pipe, drained by a helper */
	memset(&h, 0, sizeof(h));
	h.fd = fds[0];
	h.total = sizeof(big);
	pthread_create(&th, NULL, helper_drain, &h);
	CALL(f, n, intr_write(ctx, fds[1], big, sizeof(big)));
	BCHECK(f, n == (ssize_t)sizeof(big), "big intr_write returned %zd", n);
	pthread_join(th, NULL);
	BCHECK(f, h.got == (long)sizeof(big), "helper read %ld", h.got);

	/* intr_syscall: no argument, three, four, six */
	CALL(f, lr, intr_syscall(ctx, SYS_getpid));
	BCHECK(f, lr == getpid(), "intr_syscall(SYS_getpid) returned %ld", lr);
	CALL(f, lr, intr_syscall(ctx, SYS_write, (long)fds[1], (long)"abc",
				 3L));
	BCHECK(f, lr == 3, "intr_syscall(SYS_write) returned %ld", lr);
	memset(buf, 0, sizeof(buf));
	CALL(f, lr, intr_syscall(ctx, SYS_read, (long)fds[0], (long)buf,
				 (long)sizeof(buf)));
	BCHECK(f, lr == 3 && !memcmp(buf, "abc", 3),
	       "intr_syscall(SYS_read) returned %ld", lr);
	{
		int src = memfd_create("src", MFD_CLOEXEC);
		int dst = memfd_create("dst", MFD_CLOEXEC);
		loff_t off_in = 2, off_out = 1;

		BCHECK(f, src >= 0 && dst >= 0, "memfd_create");
		BCHECK(f, write(src, "0123456789", 10) == 10, "write memfd");
		memset(buf, 0, sizeof(buf));
		CALL(f, lr, intr_syscall(ctx, SYS_pread64, (long)src,
					 (long)buf, 4L, 3L));
		BCHECK(f, lr == 4 && !memcmp(buf, "3456", 4),
		       "intr_syscall(SYS_pread64) returned %ld", lr);
		/* six arguments: the sixth (flags) must be 0 */
		CALL(f, lr, intr_syscall(ctx, SYS_copy_file_range, (long)src,
					 (long)&off_in, (long)dst,
					 (long)&off_out, 5L, 1L));
		BCHECK(f, lr == -EINVAL, "copy_file_range(flags 1) returned "
		       "%ld", lr);
		CALL(f, lr, intr_syscall(ctx, SYS_copy_file_range, (long)src,
					 (long)&off_in, (long)dst,
					 (long)&off_out, 5L, 0L));
		if (lr == -EXDEV || lr == -EOPNOTSUPP || lr == -ENOSYS) {
			printf("copy_file_range unsupported here: %ld\n", lr);
		} else {
			BCHECK(f, lr == 5, "copy_file_range returned %ld", lr);
			BCHECK(f, off_in == 7 && off_out == 6,
			       "copy_file_range offsets %lld %lld",
			       (long long)off_in, (long long)off_out);
			memset(buf, 0, sizeof(buf));
			BCHECK(f, pread(dst, buf, 5, 1) == 5 &&
			       !memcmp(buf, "23456", 5),
			       "copy_file_range copied \"%.5s\"", buf);
		}
		close(src);
		close(dst);
	}

	/* poll: timeout, timeout 0, ready, one of two ready */
	pfd[0] = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	t0 = h_now_ns();
	CALL(f, r, intr_poll(ctx, pfd, 1, 20));
	el = h_now_ns() - t0;
	BCHECK(f, r == 0, "intr_poll(timeout 20) returned %d", r);
	BCHECK(f, el >= 20000000, "intr_poll(timeout 20 ms) returned after "
	       "%" PRIu64 " us", el / 1000);
	CALL(f, r, intr_poll(ctx, pfd, 1, 0));
	BCHECK(f, r == 0, "intr_poll(timeout 0) returned %d", r);
	write_char(fds[1], 'p');
	pfd[1] = (struct pollfd){ .fd = fds[1], .events = POLLIN };
	CALL(f, r, intr_poll(ctx, pfd, 2, -1));
	BCHECK(f, r == 1 && (pfd[0].revents & POLLIN) && !pfd[1].revents,
	       "intr_poll(ready) returned %d, revents %#x %#x", r,
	       pfd[0].revents, pfd[1].revents);
	BCHECK(f, read(fds[0], buf, 1) == 1, "read");
	/* a poll that blocks until a helper writes */
	memset(&h, 0, sizeof(h));
	h.fd = fds[1];
	h.delay_ns = 5000000;
	pthread_create(&th, NULL, helper_write_byte, &h);
	CALL(f, r, intr_poll(ctx, pfd, 1, 10000));
	BCHECK(f, r == 1 && (pfd[0].revents & POLLIN),
	       "blocking intr_poll returned %d", r);
	pthread_join(th, NULL);
	BCHECK(f, read(fds[0], buf, 1) == 1, "read");

	/* sleep */
	CALL(f, r, intr_sleep(ctx, 0));
	BCHECK(f, r == 0, "intr_sleep(0) returned %d", r);
	CALL(f, r, intr_sleep(ctx, 1));
	BCHECK(f, r == 0, "intr_sleep(1) returned %d", r);
	t0 = h_now_ns();
	CALL(f, r, intr_sleep(ctx, 2000000));
	el = h_now_ns() - t0;
	BCHECK(f, r == 0 && el >= 2000000, "intr_sleep(2 ms) returned %d "
	       "after %" PRIu64 " us", r, el / 1000);
	s->slept_min = UINT64_MAX;
	for (k = 0; k < SHORT_SLEEPS; k++) {
		t0 = h_now_ns();
		CALL(f, r, intr_sleep(ctx, SHORT_SLEEP_NS));
		el = h_now_ns() - t0;
		BCHECK(f, r == 0, "intr_sleep(100 us) returned %d", r);
		BCHECK(f, el >= SHORT_SLEEP_NS, "intr_sleep(100 us) returned "
		       "after %" PRIu64 " ns", el);
		if (el < s->slept_min)
			s->slept_min = el;
		s->sleeps++;
	}

	/* accept: a connection already waiting, then one made later */
	lfd = listen_local(&laddr);
	{
		int cfd = connect_local(&laddr);

		plen = sizeof(peer);
		memset(&peer, 0, sizeof(peer));
		CALL(f, r, intr_accept(ctx, lfd, (struct sockaddr *)&peer,
				       &plen));
		BCHECK(f, r >= 0, "intr_accept returned %d", r);
		if (r >= 0) {
			BCHECK(f, plen == sizeof(peer) &&
			       peer.sin_family == AF_INET &&
			       ntohs(peer.sin_port) == local_port(cfd, false),
			       "intr_accept: wrong peer address");
			BCHECK(f, local_port(r, true) == local_port(cfd, false),
			       "intr_accept: not the client's connection");
			BCHECK(f, write(cfd, "z", 1) == 1 &&
			       read(r, buf, 1) == 1 && buf[0] == 'z',
			       "accepted connection does not carry data");
			close(r);
		}
		close(cfd);
	}
	memset(&h, 0, sizeof(h));
	h.addr = laddr;
	h.delay_ns = 5000000;
	h.cfd = -1;
	pthread_create(&th, NULL, helper_connect, &h);
	CALL(f, r, intr_accept(ctx, lfd, NULL, NULL));
	BCHECK(f, r >= 0, "blocking intr_accept returned %d", r);
	pthread_join(th, NULL);
	BCHECK(f, h.cfd >= 0, "helper could not connect");
	if (r >= 0 && h.cfd >= 0)
		BCHECK(f, local_port(r, true) == local_port(h.cfd, false),
		       "blocking intr_accept: not the helper's connection");
	if (r >= 0)
		close(r);
	if (h.cfd >= 0)
		close(h.cfd);
	close(lfd);

	/* cond_wait woken by a helper's broadcast */
	init_errorcheck_mutex(&m);
	pthread_cond_init(&c, NULL);
	memset(&h, 0, sizeof(h));
	h.m = &m;
	h.c = &c;
	h.pred = &pred;
	h.delay_ns = 5000000;
	pthread_mutex_lock(&m);
	pthread_create(&th, NULL, helper_broadcast, &h);
	r = 0;
	while (!pred && r == 0)
		CALL(f, r, intr_cond_wait(ctx, &c, &m));
	BCHECK(f, r == 0 && pred, "intr_cond_wait returned %d", r);
	BCHECK(f, pthread_mutex_unlock(&m) == 0,
	       "mutex not held after intr_cond_wait");
	pthread_join(th, NULL);
	pthread_cond_destroy(&c);
	pthread_mutex_destroy(&m);

	/* end of file */
	close(fds[1]);
	CALL(f, n, intr_read(ctx, fds[0], buf, sizeof(buf)));
	BCHECK(f, n == 0, "intr_read at EOF returned %zd", n);
	close(fds[0]);

	BCHECK(f, !intr_cancelled(ctx), "uncancelled call reads cancelled");
	return s;
}

START_TEST(wrappers_success)
{
	struct succ s;
	intr_token *tok;
	void *res = NULL;

	memset(&s, 0, sizeof(s));
	configure(0, RESEND_US);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(run_interruptible(tok, success_body, &s, &res), 0);
	ck_assert_ptr_eq(res, &s);
	printf("wrappers_success: %ld sleeps of 100 us, shortest %" PRIu64
	       " ns\n", s.sleeps, s.slept_min);
	fflush(stdout);
	BFAIL_ASSERT(&s.f);
	ck_assert_int_eq(s.sleeps, SHORT_SLEEPS);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* --------------------------------------------- 10. errors are -errno */

static void *errors_body(intr_ctx *ctx, void *p)
{
	struct bfail *f = p;
	char buf[8];
	int fds[2], sfd, r, bad_fd = 99999;
	long lr;
	ssize_t n;
	struct pollfd pfd;

	h_make_pipe(fds);
	BCHECK(f, fcntl(bad_fd, F_GETFD) < 0, "fd %d is open", bad_fd);

	CALL(f, n, intr_read(ctx, -1, buf, 1));
	BCHECK(f, n == -EBADF, "intr_read(-1) returned %zd", n);
	CALL(f, n, intr_read(ctx, bad_fd, buf, 1));
	BCHECK(f, n == -EBADF, "intr_read(closed) returned %zd", n);
	CALL(f, n, intr_read(ctx, fds[1], buf, 1));
	BCHECK(f, n == -EBADF, "intr_read(write end) returned %zd", n);
	CALL(f, n, intr_write(ctx, -1, "x", 1));
	BCHECK(f, n == -EBADF, "intr_write(-1) returned %zd", n);
	CALL(f, n, intr_write(ctx, fds[0], "x", 1));
	BCHECK(f, n == -EBADF, "intr_write(read end) returned %zd", n);
	write_char(fds[1], 'e');
	/* The bad pointers are the point of these calls, and memcheck
	 * reports them: not under valgrind. */
	if (!h_under_valgrind()) {
		CALL(f, n, intr_read(ctx, fds[0], (void *)8, 1));
		BCHECK(f, n == -EFAULT, "intr_read(bad buffer) returned %zd",
		       n);
	}

	CALL(f, lr, intr_syscall(ctx, SYS_read, -1L, (long)buf, 1L));
	BCHECK(f, lr == -EBADF, "intr_syscall(SYS_read, -1) returned %ld", lr);
	CALL(f, lr, intr_syscall(ctx, SYS_close, (long)bad_fd));
	BCHECK(f, lr == -EBADF, "intr_syscall(SYS_close, closed) returned %ld",
	       lr);
	CALL(f, lr, intr_syscall(ctx, 100000L));
	BCHECK(f, lr == -ENOSYS, "intr_syscall(100000) returned %ld", lr);

	CALL(f, r, intr_accept(ctx, -1, NULL, NULL));
	BCHECK(f, r == -EBADF, "intr_accept(-1) returned %d", r);
	CALL(f, r, intr_accept(ctx, fds[0], NULL, NULL));
	BCHECK(f, r == -ENOTSOCK, "intr_accept(pipe) returned %d", r);
	sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CALL(f, r, intr_accept(ctx, sfd, NULL, NULL));
	BCHECK(f, r == -EINVAL, "intr_accept(not listening) returned %d", r);
	close(sfd);

	pfd = (struct pollfd){ .fd = bad_fd, .events = POLLIN };
	CALL(f, r, intr_poll(ctx, &pfd, 1, 0));
	BCHECK(f, r == 1 && pfd.revents == POLLNVAL,
	       "intr_poll(closed fd) returned %d, revents %#x", r,
	       pfd.revents);
	if (!h_under_valgrind()) {
		CALL(f, r, intr_poll(ctx, (struct pollfd *)8, 1, 0));
		BCHECK(f, r == -EFAULT, "intr_poll(bad array) returned %d", r);
	}

	BCHECK(f, !intr_cancelled(ctx), "uncancelled call reads cancelled");
	h_close_pipe(fds);
	return f;
}

START_TEST(wrappers_errors)
{
	struct bfail f;
	intr_token *tok;
	void *res = NULL;

	memset(&f, 0, sizeof(f));
	configure(0, RESEND_US);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(run_interruptible(tok, errors_body, &f, &res), 0);
	ck_assert_ptr_eq(res, &f);
	BFAIL_ASSERT(&f);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------- 11. a cancelled call: every wrapper says so */

enum wrapper {
	WR_SYSCALL, WR_SYSCALL_GETPID, WR_READ, WR_WRITE, WR_POLL, WR_ACCEPT,
	WR_SLEEP, WR_COND, WR_ON_CANCEL, WR_NR
};

static const char *const wrapper_name[WR_NR] = {
	"intr_syscall(SYS_read)", "intr_syscall(SYS_getpid)", "intr_read",
	"intr_write", "intr_poll", "intr_accept", "intr_sleep",
	"intr_cond_wait", "intr_on_cancel",
};

/* Everything a wrapper could act on is ready: data, space, a connection. */
struct ready {
	int fds[2];
	int lfd;
	int cfd;
	struct sockaddr_in addr;
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int wake_runs;
};

static void ready_wake(void *p)
{
	struct ready *rd = p;

	atomic_fetch_add(&rd->wake_runs, 1);
}

static void ready_init(struct ready *rd)
{
	memset(rd, 0, sizeof(*rd));
	h_make_pipe(rd->fds);
	write_char(rd->fds[1], 'r');
	rd->lfd = listen_local(&rd->addr);
	rd->cfd = connect_local(&rd->addr);
	init_errorcheck_mutex(&rd->m);
	ck_assert_int_eq(pthread_cond_init(&rd->c, NULL), 0);
}

static void ready_fini(struct ready *rd)
{
	h_close_pipe(rd->fds);
	close(rd->lfd);
	close(rd->cfd);
	pthread_cond_destroy(&rd->c);
	pthread_mutex_destroy(&rd->m);
}

/* Call one wrapper on rd; returns its result. */
static long call_wrapper(intr_ctx *ctx, enum wrapper wr, struct ready *rd,
			 struct bfail *f)
{
	struct pollfd pfd = { .fd = rd->fds[0], .events = POLLIN };
	char buf[8];
	long r = 0;

	switch (wr) {
	case WR_SYSCALL:
		CALL(f, r, intr_syscall(ctx, SYS_read, (long)rd->fds[0],
					(long)buf, 1L));
		break;
	case WR_SYSCALL_GETPID:
		CALL(f, r, intr_syscall(ctx, SYS_getpid));
		break;
	case WR_READ:
		CALL(f, r, intr_read(ctx, rd->fds[0], buf, 1));
		break;
	case WR_WRITE:
		CALL(f, r, intr_write(ctx, rd->fds[1], "w", 1));
		break;
	case WR_POLL:
		CALL(f, r, intr_poll(ctx, &pfd, 1, 0));
		break;
	case WR_ACCEPT:
		CALL(f, r, intr_accept(ctx, rd->lfd, NULL, NULL));
		if (r >= 0)
			close((int)r);
		break;
	case WR_SLEEP:
		CALL(f, r, intr_sleep(ctx, 1000000));
		break;
	case WR_COND: {
		int e = pthread_mutex_lock(&rd->m);

		BCHECK(f, e == 0, "lock: %d", e);
		CALL(f, r, intr_cond_wait(ctx, &rd->c, &rd->m));
		e = pthread_mutex_unlock(&rd->m);
		BCHECK(f, e == 0, "intr_cond_wait returned %ld without the "
		       "mutex held (unlock %d)", r, e);
		break;
	}
	default:
		CALL(f, r, intr_on_cancel(ctx, ready_wake, rd));
		break;
	}
	return r;
}

/* Nothing was consumed, produced or registered. */
static void ready_untouched(struct ready *rd, struct bfail *f,
			    const char *when)
{
	struct pollfd p = { .fd = rd->lfd, .events = POLLIN };

	BCHECK(f, pipe_avail(rd->fds[0]) == 1, "%s: %d bytes in the pipe, "
	       "expected 1", when, pipe_avail(rd->fds[0]));
	BCHECK(f, poll(&p, 1, 0) == 1, "%s: the waiting connection was "
	       "accepted", when);
	BCHECK(f, atomic_load(&rd->wake_runs) == 0, "%s: a wake ran", when);
}

struct after {
	struct ready rd;
	atomic_int started;
	atomic_int go;
	int first;		/* the wrapper called first (unacknowledged) */
	int reason;
	long ret[WR_NR];
	bool ack;
	struct bfail f;
};

static void *after_cancel_body(intr_ctx *ctx, void *p)
{
	struct after *af = p;
	int k;

	atomic_store(&af->started, 1);
	BCHECK(&af->f, h_wait_atomic(&af->go, 1, WAIT_MS), "no go");
	for (k = 0; k < WR_NR; k++) {
		enum wrapper wr = (enum wrapper)((af->first + k) % WR_NR);

		af->ret[wr] = call_wrapper(ctx, wr, &af->rd, &af->f);
		BCHECK(&af->f, af->ret[wr] == af->reason,
		       "cancelled (reason %d, %s): %s returned %ld", af->reason,
		       k ? "acknowledged" : "not acknowledged",
		       wrapper_name[wr], af->ret[wr]);
		ready_untouched(&af->rd, &af->f, wrapper_name[wr]);
	}
	af->ack = intr_cancelled(ctx);
	BCHECK(&af->f, intr_reason(ctx) == af->reason, "intr_reason %d",
	       intr_reason(ctx));
	return af;
}

START_TEST(wrappers_after_cancel)
{
	int first, h;

	configure(0, RESEND_US);
	for (first = 0; first < WR_NR; first++) {
		for (h = HOW_TOKEN; h <= HOW_DEADLINE; h++) {
			struct after af;
			intr_token *tok;
			intr_task *task;
			void *res = NULL;

			memset(&af, 0, sizeof(af));
			ready_init(&af.rd);
			af.first = first;
			af.reason = h == HOW_DEADLINE ? -ETIMEDOUT : -ECANCELED;
			ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
			ck_assert_int_eq(intr_spawn(&task, tok,
						    after_cancel_body, &af), 0);
			ck_assert(h_wait_atomic(&af.started, 1, WAIT_MS));
			if (h == HOW_DEADLINE) {
				ck_assert_int_eq(intr_token_cancel_after(tok,
									 1000),
						 0);
				wait_reason(tok, -ETIMEDOUT);
			} else {
				do_cancel(tok, task, (enum how)h);
			}
			atomic_store(&af.go, 1);
			ck_assert_int_eq(h_join_within(task, &res, WAIT_MS),
					 af.reason);
			ck_assert_ptr_eq(res, &af);
			BFAIL_ASSERT(&af.f);
			ck_assert(af.ack);
			ready_untouched(&af.rd, &af.f, "after the join");
			BFAIL_ASSERT(&af.f);
			ck_assert_int_eq(intr_token_free(tok), 0);
			ready_fini(&af.rd);
		}
	}
}
END_TEST

/* --------------------------- 12. off the worker: -EINVAL, nothing done */

struct offw {
	struct ready rd;	/* the pipe holds no data: a real read blocks */
	intr_ctx *ctx;
	struct bfail f;
	long calls;
};

/* Every wrapper with ctx, here, must refuse at once. */
static void all_einval(struct offw *o, intr_ctx *ctx, bool with_on_cancel,
		       const char *where)
{
	int wr;

	/* an empty pipe: a wrapper that did read would block */
	BCHECK(&o->f, pipe_avail(o->rd.fds[0]) == 0, "pipe not empty");
	for (wr = 0; wr < WR_NR; wr++) {
		long r;

		if (wr == WR_ON_CANCEL && !with_on_cancel)
			continue;
		if (wr == WR_POLL || wr == WR_SLEEP) {
			struct pollfd pfd = { .fd = o->rd.fds[0],
					      .events = POLLIN };

			/* block for long if not refused */
			if (wr == WR_POLL)
				CALL(&o->f, r, intr_poll(ctx, &pfd, 1, 10000));
			else
				CALL(&o->f, r, intr_sleep(ctx, 10000000000ull));
		} else {
			r = call_wrapper(ctx, (enum wrapper)wr, &o->rd, &o->f);
		}
		o->calls++;
		BCHECK(&o->f, r == -EINVAL, "%s: %s returned %ld, expected "
		       "-EINVAL", where, wrapper_name[wr], r);
	}
	{
		struct pollfd p = { .fd = o->rd.lfd, .events = POLLIN };

		BCHECK(&o->f, pipe_avail(o->rd.fds[0]) == 0,
		       "%s: a refused wrapper wrote into the pipe", where);
		BCHECK(&o->f, poll(&p, 1, 0) == 1,
		       "%s: a refused wrapper accepted the connection", where);
	}
}

static void *offw_thread(void *p)
{
	struct offw *o = p;

	all_einval(o, o->ctx, true, "another thread");
	return NULL;
}

static void offw_finalizer(void *p)
{
	struct offw *o = p;

	all_einval(o, o->ctx, false, "a finalizer");
}

static void *offw_body(intr_ctx *ctx, void *p)
{
	struct offw *o = p;
	struct timespec ts;
	pthread_t th;

	o->ctx = ctx;
	if (pthread_create(&th, NULL, offw_thread, o) == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += WAIT_MS / 1000;
		BCHECK(&o->f, pthread_timedjoin_np(th, NULL, &ts) == 0,
		       "wrappers called from another thread blocked");
	}
	BCHECK(&o->f, intr_defer(ctx, offw_finalizer, o) == 0, "intr_defer");
	return o;
}

/* Body B uses body A's context: foreign on this worker. */
struct foreign {
	struct offw *o;
	atomic_int a_ready;
	atomic_int b_done;
};

static void *foreign_a_body(intr_ctx *ctx, void *p)
{
	struct foreign *fo = p;

	fo->o->ctx = ctx;
	H_HAPPENS_BEFORE(&fo->a_ready);
	atomic_store(&fo->a_ready, 1);
	BCHECK(&fo->o->f, h_wait_atomic(&fo->b_done, 1, WAIT_MS),
	       "B never done");
	return fo;
}

static void *foreign_b_body(intr_ctx *ctx, void *p)
{
	struct foreign *fo = p;

	(void)ctx;
	BCHECK(&fo->o->f, h_wait_atomic(&fo->a_ready, 1, WAIT_MS),
	       "A never ready");
	all_einval(fo->o, fo->o->ctx, true, "another body");
	atomic_store(&fo->b_done, 1);
	return fo;
}

START_TEST(wrappers_off_worker_einval)
{
	struct foreign fo;
	struct offw o;
	intr_token *tok;
	intr_task *ta, *tb;
	void *res = NULL;

	configure(0, RESEND_US);
	memset(&o, 0, sizeof(o));
	ready_init(&o.rd);
	drain_pipe(o.rd.fds[0]);	/* empty: a real read would block */

	/* the main thread, NULL context */
	all_einval(&o, NULL, true, "main thread, NULL ctx");
	BFAIL_ASSERT(&o.f);

	/* another thread and a finalizer, with a live context */
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_int_eq(intr_spawn(&ta, tok, offw_body, &o), 0);
	ck_assert_int_eq(h_join_within(ta, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, &o);
	BFAIL_ASSERT(&o.f);

	/* another body's context */
	memset(&fo, 0, sizeof(fo));
	fo.o = &o;
	ck_assert_int_eq(intr_spawn(&ta, tok, foreign_a_body, &fo), 0);
	ck_assert_int_eq(intr_spawn(&tb, tok, foreign_b_body, &fo), 0);
	ck_assert_int_eq(h_join_within(tb, &res, WAIT_MS), 0);
	ck_assert_int_eq(h_join_within(ta, &res, WAIT_MS), 0);
	BFAIL_ASSERT(&o.f);

	printf("wrappers_off_worker_einval: %ld calls refused\n", o.calls);
	fflush(stdout);
	ck_assert_int_eq(o.calls, 4 * WR_NR - 1);
	ck_assert_int_eq(atomic_load(&o.rd.wake_runs), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	ready_fini(&o.rd);
}
END_TEST

/* ----------------------- 13. SIGPROF at 1 kHz: no EINTR, nothing lost */

static atomic_long g_prof_total, g_prof_body, g_prof_wrapper;
static __thread volatile sig_atomic_t t_in_body, t_in_wrapper;

static void on_sigprof(int sig)
{
	(void)sig;
	atomic_fetch_add(&g_prof_total, 1);
	if (t_in_body)
		atomic_fetch_add(&g_prof_body, 1);
	if (t_in_wrapper)
		atomic_fetch_add(&g_prof_wrapper, 1);
}

enum prof_kind {
	PK_READ, PK_SYSCALL, PK_SLEEP, PK_POLL_TIMEOUT, PK_POLL_DATA, PK_COND,
	PK_NR
};

static const char *const prof_name[PK_NR] = {
	"intr_read", "intr_syscall(SYS_read)", "intr_sleep(5 ms)",
	"intr_poll(timeout 5 ms)", "intr_poll(data)", "intr_cond_wait",
};

struct prof_call {
	enum prof_kind kind;
	int fd;
	pthread_mutex_t *m;
	pthread_cond_t *c;
	int *pred;
	long ret;		/* the last wrapper result */
	bool eintr;
	bool ecanceled;
	struct bfail *f;
};

static void prof_note(struct prof_call *pc, long r)
{
	pc->ret = r;
	if (r == -EINTR)
		pc->eintr = true;
	if (r == -ECANCELED || r == -ETIMEDOUT)
		pc->ecanceled = true;
}

static void *prof_body(intr_ctx *ctx, void *p)
{
	struct prof_call *pc = p;
	struct bfail *f = pc->f;
	struct pollfd pfd = { .fd = pc->fd, .events = POLLIN };
	sigset_t set;
	timer_t tm;
	uint64_t t0, el;
	char c = 0;
	long r = 0;
	int e;

	e = prof_timer_start(&tm);
	BCHECK(f, e == 0, "timer_create/settime: %d", e);
	if (e)
		return pc;
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	t_in_body = 1;
	t0 = h_now_ns();
	switch (pc->kind) {
	case PK_READ:
		t_in_wrapper = 1;
		r = intr_read(ctx, pc->fd, &c, 1);
		t_in_wrapper = 0;
		prof_note(pc, r);
		BCHECK(f, r == 1 && c == 'p', "%s returned %ld",
		       prof_name[pc->kind], r);
		break;
	case PK_SYSCALL:
		t_in_wrapper = 1;
		r = intr_syscall(ctx, SYS_read, (long)pc->fd, (long)&c, 1L);
		t_in_wrapper = 0;
		prof_note(pc, r);
		BCHECK(f, r == 1 && c == 'p', "%s returned %ld",
		       prof_name[pc->kind], r);
		break;
	case PK_SLEEP:
		t_in_wrapper = 1;
		r = intr_sleep(ctx, PROF_SLEEP_NS);
		t_in_wrapper = 0;
		el = h_now_ns() - t0;
		prof_note(pc, r);
		BCHECK(f, r == 0 && el >= PROF_SLEEP_NS, "%s returned %ld "
		       "after %" PRIu64 " us", prof_name[pc->kind], r,
		       el / 1000);
		break;
	case PK_POLL_TIMEOUT:
		t_in_wrapper = 1;
		r = intr_poll(ctx, &pfd, 1, PROF_POLL_MS);
		t_in_wrapper = 0;
		el = h_now_ns() - t0;
		prof_note(pc, r);
		BCHECK(f, r == 0 && el >= PROF_POLL_MS * 1000000ull,
		       "%s returned %ld after %" PRIu64 " us",
		       prof_name[pc->kind], r, el / 1000);
		break;
	case PK_POLL_DATA:
		t_in_wrapper = 1;
		r = intr_poll(ctx, &pfd, 1, 10000);
		t_in_wrapper = 0;
		prof_note(pc, r);
		BCHECK(f, r == 1 && (pfd.revents & POLLIN), "%s returned %ld",
		       prof_name[pc->kind], r);
		break;
	default:
		pthread_mutex_lock(pc->m);
		while (!*pc->pred) {
			t_in_wrapper = 1;
			r = intr_cond_wait(ctx, pc->c, pc->m);
			t_in_wrapper = 0;
			prof_note(pc, r);
			if (r != 0)
				break;
		}
		BCHECK(f, r == 0 && *pc->pred, "%s returned %ld",
		       prof_name[pc->kind], r);
		e = pthread_mutex_unlock(pc->m);
		BCHECK(f, e == 0, "mutex not held after intr_cond_wait: %d", e);
		break;
	}
	t_in_body = 0;
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	timer_delete(tm);
	BCHECK(f, !intr_cancelled(ctx), "uncancelled call reads cancelled");
	return pc;
}

START_TEST(wrappers_sigprof)
{
	long calls[PK_NR] = { 0 }, eintr = 0, ecanceled = 0;
	uint64_t end;
	struct sigaction sa;
	struct bfail f;
	intr_token *tok;
	sigset_t set;
	int k;

	memset(&f, 0, sizeof(f));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigprof;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: every hit is an EINTR */
	ck_assert_int_eq(sigaction(SIGPROF, &sa, NULL), 0);
	/* only the bodies take it */
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	configure(0, RESEND_US);
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);

	end = h_now_ns() + PROF_RUN_NS;
	for (k = 0; (int64_t)(end - h_now_ns()) > 0; k++) {
		enum prof_kind kind = (enum prof_kind)(k % PK_NR);
		struct prof_call pc;
		pthread_mutex_t m;
		pthread_cond_t c;
		int pred = 0, fds[2], ret;
		intr_task *task;
		void *res = NULL;

		memset(&pc, 0, sizeof(pc));
		h_make_pipe(fds);
		pthread_mutex_init(&m, NULL);
		pthread_cond_init(&c, NULL);
		pc.kind = kind;
		pc.fd = fds[0];
		pc.m = &m;
		pc.c = &c;
		pc.pred = &pred;
		pc.f = &f;
		ck_assert_int_eq(intr_spawn(&task, tok, prof_body, &pc), 0);
		if (kind == PK_READ || kind == PK_SYSCALL ||
		    kind == PK_POLL_DATA) {
			sleep_ns(PROF_DELAY_NS);
			write_char(fds[1], 'p');
		} else if (kind == PK_COND) {
			sleep_ns(PROF_DELAY_NS);
			pthread_mutex_lock(&m);
			pred = 1;
			pthread_cond_broadcast(&c);
			pthread_mutex_unlock(&m);
		}
		ret = join_bounded(task, &res, k, prof_name[kind]);
		ck_assert_msg(ret == 0, "%s: uncancelled call returned %d",
			      prof_name[kind], ret);
		ck_assert_ptr_eq(res, &pc);
		calls[kind]++;
		eintr += pc.eintr;
		ecanceled += pc.ecanceled;
		pthread_cond_destroy(&c);
		pthread_mutex_destroy(&m);
		h_close_pipe(fds);
	}
	printf("wrappers_sigprof: SIGPROF %ld in all, %ld in bodies, %ld in "
	       "wrappers;", atomic_load(&g_prof_total),
	       atomic_load(&g_prof_body), atomic_load(&g_prof_wrapper));
	for (k = 0; k < PK_NR; k++)
		printf(" %s x%ld", prof_name[k], calls[k]);
	printf("; -EINTR %ld, cancel reasons %ld\n", eintr, ecanceled);
	fflush(stdout);
	ck_assert_msg(eintr == 0, "%ld wrappers returned -EINTR", eintr);
	ck_assert_msg(ecanceled == 0, "%ld wrappers returned a cancel reason "
		      "though nothing was cancelled", ecanceled);
	BFAIL_ASSERT(&f);
	ck_assert_msg(atomic_load(&g_prof_body) > 100,
		      "SIGPROF reached the bodies only %ld times",
		      atomic_load(&g_prof_body));
	ck_assert_msg(atomic_load(&g_prof_wrapper) > 100,
		      "SIGPROF interrupted the wrappers only %ld times",
		      atomic_load(&g_prof_wrapper));
	ck_assert_int_eq(intr_token_reason(tok), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ----------------------------------- 14. intr_sleep: where the cancel lands */

/*
 * intr_sleep waits on a futex that the cancel wakes, not for the signal
 * (tests/wake-paths counts the signals).  Every place a cancel can land
 * on it gets the reason, within the join's bound, with re-sends 10 s
 * away: a cancel (or a token deadline) that finds the body asleep, also
 * after a SIGPROF woke it once; one that came while the body ran, before
 * the sleep; and 300 that land 0-50 us after the spawn, anywhere in the
 * sleep's entry.  A sleep of 30 s that a lost wake leaves alone fails the
 * join.
 */
#define NOSIG_SLEEP_NS	30000000000ull	/* 30 s: far past WAIT_MS */
#define NOSIG_RESEND_US	10000000u

enum nosig_when { NS_ASLEEP, NS_DEADLINE, NS_SIGPROF, NS_BEFORE, NS_GAP,
		  NS_NR };

static const char *const nosig_name[NS_NR] = {
	"asleep", "deadline while asleep", "SIGPROF, then the cancel",
	"before the sleep", "0-50 us after the spawn",
};

static const int nosig_rounds[NS_NR] = { 20, 10, 10, 20, 300 };

struct nosig {
	enum nosig_when when;
	atomic_int tid;
	atomic_int go;		/* NS_BEFORE: the cancel is in */
	int ret;
	bool waited;		/* NS_BEFORE: the go came */
};

static atomic_int g_nosig_prof;

static void nosig_on_prof(int sig)
{
	(void)sig;
	atomic_fetch_add(&g_nosig_prof, 1);
}

static void *nosig_body(intr_ctx *ctx, void *p)
{
	struct nosig *n = p;
	sigset_t set;

	if (n->when == NS_SIGPROF) {
		sigemptyset(&set);
		sigaddset(&set, SIGPROF);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	atomic_store(&n->tid, h_gettid());
	if (n->when == NS_BEFORE)
		n->waited = h_spin_atomic(&n->go, 1, WAIT_MS);
	n->ret = intr_sleep(ctx, NOSIG_SLEEP_NS);
	return p;
}

static void nosig_round(enum nosig_when when, struct h_rng *r, long i)
{
	int want = when == NS_DEADLINE ? -ETIMEDOUT : -ECANCELED;
	intr_token *tok = h_new_token(NULL);
	struct nosig n;
	intr_task *task;
	void *res = NULL;
	int prof;

	memset(&n, 0, sizeof(n));
	n.when = when;
	ck_assert_int_eq(intr_spawn(&task, tok, nosig_body, &n), 0);
	if (when == NS_GAP) {
		h_spin_ns(h_rng_below(r, MAX_SPIN_NS + 1));
	} else {
		ck_assert_msg(h_wait_atomic(&n.tid, 1, WAIT_MS),
			      "%s %ld: the body did not start", nosig_name[when],
			      i);
	}
	if (when < NS_BEFORE)
		ck_assert_msg(h_wait_sleeping(atomic_load(&n.tid), WAIT_MS),
			      "%s %ld: the body is not asleep", nosig_name[when],
			      i);
	if (when == NS_SIGPROF) {
		prof = atomic_load(&g_nosig_prof);
		ck_assert_int_eq(syscall(SYS_tgkill, getpid(),
					 atomic_load(&n.tid), SIGPROF),
				 0);
		ck_assert_msg(h_wait_atomic(&g_nosig_prof, prof + 1, WAIT_MS),
			      "%s %ld: SIGPROF not handled", nosig_name[when],
			      i);
		ck_assert_msg(h_wait_sleeping(atomic_load(&n.tid), WAIT_MS),
			      "%s %ld: the body is not asleep again",
			      nosig_name[when], i);
	}
	if (when == NS_DEADLINE)
		ck_assert_int_eq(intr_token_cancel_after(tok, 1000000), 0);
	else
		ck_assert_int_eq(intr_token_cancel(tok), 0);
	if (when == NS_BEFORE)
		atomic_store(&n.go, 1);
	ck_assert_int_eq(join_bounded(task, &res, i, nosig_name[when]), want);
	if (when == NS_GAP && !res) {
		/* Cancelled before the body started: skipped. */
		ck_assert_int_eq(intr_token_free(tok), 0);
		return;
	}
	ck_assert_ptr_eq(res, &n);
	ck_assert_msg(n.ret == want, "%s %ld: intr_sleep returned %d, not %d",
		      nosig_name[when], i, n.ret, want);
	if (when == NS_BEFORE)
		ck_assert(n.waited);
	ck_assert_int_eq(intr_token_free(tok), 0);
}

START_TEST(sleep_cancel_anywhere)
{
	struct sigaction sa;
	struct h_rng r;
	sigset_t set;
	int w;
	long i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = nosig_on_prof;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGPROF, &sa, NULL), 0);
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	configure(0, NOSIG_RESEND_US);
	h_rng_seed(&r, "sleep_cancel_anywhere");
	for (w = 0; w < NS_NR; w++)
		for (i = 0; i < nosig_rounds[w]; i++)
			nosig_round((enum nosig_when)w, &r, i);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("wrappers");
	TCase *tc;

	tc = h_tcase(s, "basics", TEST_TIMEOUT);
	tcase_add_test(tc, wrappers_success);
	tcase_add_test(tc, wrappers_errors);
	tcase_add_test(tc, wrappers_after_cancel);
	tcase_add_test(tc, wrappers_off_worker_einval);
	tcase_add_test(tc, oncancel_basic);
	tc = h_tcase(s, "race", TEST_TIMEOUT);
	tcase_add_loop_test(tc, race_syscall_read, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_read, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_cond_wait_never, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_cond_wait_broadcast, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_sleep, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_poll, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_accept, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_write, 0, H_HOSTS);
	tcase_add_loop_test(tc, race_on_cancel, 0, H_HOSTS);
	tc = h_tcase(s, "race-data", TEST_TIMEOUT);
	tcase_set_tags(tc, H_TAG_QEMU_OPEN);
	tcase_add_loop_test(tc, race_data_read, 0, H_HOSTS);
	tc = h_tcase(s, "sigprof", TEST_TIMEOUT);
	tcase_add_test(tc, wrappers_sigprof);
	tc = h_tcase(s, "wake", TEST_TIMEOUT);
	tcase_add_test(tc, sleep_cancel_anywhere);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
