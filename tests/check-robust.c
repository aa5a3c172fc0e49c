/* SPDX-License-Identifier: MIT */
/*
 * Robustness: one test per way the library once could hang, kill the
 * process or leave a call behind.  Every wait is bounded.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "harness.h"
#include "bound.h"

#define WAIT_MS 5000
#define TEST_TIMEOUT 60

/* A body that blocks in a plain read() until its call is cancelled. */
struct reader {
	int fds[2];
	atomic_int tid;
	atomic_int started;
};

static void *read_until_cancelled(intr_ctx *ctx, void *arg)
{
	struct reader *r = arg;
	char b;

	atomic_store(&r->tid, h_gettid());
	atomic_store(&r->started, 1);
	while (!intr_cancelled(ctx))
		if (read(r->fds[0], &b, 1) == 1)
			return BODY_MARK(1);
	return BODY_MARK(2);
}

static void reader_init(struct reader *r)
{
	h_make_pipe(r->fds);
	atomic_init(&r->tid, 0);
	atomic_init(&r->started, 0);
}

static int counted;

static void *count_body(intr_ctx *ctx, void *arg)
{
	counted++;
	return arg;
}

/* A call on a cancelled token needs no worker: even with the pool full it
 * returns the reason, not -EAGAIN. */
START_TEST(cancelled_token_full_pool)
{
	struct intr_config cfg;
	struct reader r;
	intr_token *busy, *dead;
	intr_task *t;
	void *res = BODY_MARK(7);

	intr_config_default(&cfg);
	cfg.max_workers = 1;
	ck_assert_int_eq(intr_configure(&cfg), 0);
	busy = h_new_token(NULL);
	dead = h_new_token(NULL);
	reader_init(&r);
	ck_assert_int_eq(intr_spawn(&t, busy, read_until_cancelled, &r), 0);
	ck_assert(h_spin_atomic(&r.started, 1, WAIT_MS));
	/* The only worker is taken. */
	ck_assert_int_eq(run_interruptible(NULL, count_body, NULL, NULL),
			 -EAGAIN);
	ck_assert_int_eq(intr_token_cancel(dead), 0);
	ck_assert_int_eq(run_interruptible(dead, count_body, NULL, &res),
			 -ECANCELED);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(counted, 0);
	ck_assert_int_eq(intr_token_cancel(busy), 0);
	ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS), -ECANCELED);
	ck_assert_int_eq(intr_token_free(busy), 0);
	ck_assert_int_eq(intr_token_free(dead), 0);
	h_close_pipe(r.fds);
}
END_TEST

/* A finalizer that unblocks SIGINT, whose handler cancels: the worker must
 * not take its lock with SIGINT open (the handler would wait for that very
 * lock on the same thread). */
static intr_token *sigint_tok;
static atomic_int sigints;

static void on_sigint(int sig)
{
	intr_token_cancel(sigint_tok);
	atomic_fetch_add(&sigints, 1);
}

static void unblock_sigint(void *arg)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static atomic_int shooting;
static atomic_int calls_done;

/* Process-directed: it lands on whichever thread has SIGINT open, which
 * is only ever a worker whose finalizer opened it.  Paced by the calls:
 * one SIGINT per call at most, so that the worker is not kept in the
 * handler for ever (a flood that never lets it return to its code would
 * be a livelock of the test's own making, and under valgrind, which
 * delivers each signal slowly, nearly one). */
static void *shooter(void *arg)
{
	int seen = -1;

	while (atomic_load(&shooting)) {
		int now = atomic_load(&calls_done);

		if (now != seen) {
			kill(getpid(), SIGINT);
			seen = now;
		}
		if (h_under_valgrind())
			h_sleep_ms(1);	/* leave valgrind's lock to the rest */
		else
			h_spin_ns(5000);
	}
	return NULL;
}

static void *fin_body(intr_ctx *ctx, void *arg)
{
	intr_defer(ctx, unblock_sigint, NULL);
	return NULL;
}

START_TEST(finalizer_changes_mask)
{
	struct sigaction sa = { .sa_handler = on_sigint };
	sigset_t s;
	pthread_t th;
	int i;

	sigaction(SIGINT, &sa, NULL);
	sigint_tok = h_new_token(NULL);
	/* Only the worker may take SIGINT. */
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	atomic_store(&shooting, 1);
	ck_assert_int_eq(pthread_create(&th, NULL, shooter, NULL), 0);
	/* A deadlock shows as the test's timeout. */
	for (i = 0; i < h_scale(100000); i++) {
		ck_assert_int_ge(run_interruptible(NULL, fin_body, NULL, NULL),
				 0);
		atomic_fetch_add(&calls_done, 1);
	}
	atomic_store(&shooting, 0);
	pthread_join(th, NULL);
	printf("finalizer_changes_mask: %d calls, %d SIGINTs on the worker\n",
	       i, atomic_load(&sigints));
	ck_assert_int_gt(atomic_load(&sigints), 0);
}
END_TEST

/* A cancelled condition wait whose wake-up blocks on the application's
 * mutex must not hold up another call's deadline. */
struct waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int waiting;
};

static void *cond_body(intr_ctx *ctx, void *arg)
{
	struct waiter *w = arg;
	int ret;

	pthread_mutex_lock(&w->m);
	atomic_store(&w->waiting, 1);
	do
		ret = intr_cond_wait(ctx, &w->c, &w->m);
	while (ret == 0);
	pthread_mutex_unlock(&w->m);
	return BODY_MARK(ret == -ECANCELED ? 1 : 2);
}

START_TEST(deadline_while_wakeup_blocks)
{
	struct waiter w = { .m = PTHREAD_MUTEX_INITIALIZER,
			    .c = PTHREAD_COND_INITIALIZER };
	intr_token *a = h_new_token(NULL), *b = h_new_token(NULL);
	struct reader r;
	intr_task *ta, *tb;
	void *res;

	atomic_init(&w.waiting, 0);
	reader_init(&r);
	ck_assert_int_eq(intr_spawn(&ta, a, cond_body, &w), 0);
	ck_assert(h_spin_atomic(&w.waiting, 1, WAIT_MS));
	pthread_mutex_lock(&w.m);	/* the body waits: we can have it */
	/* The wake-up now blocks on w.m, which we hold ... */
	ck_assert_int_eq(intr_token_cancel(a), 0);
	/* ... while another call's deadline must still fire. */
	ck_assert_int_eq(intr_token_cancel_after(b, 50000000), 0);
	ck_assert_int_eq(intr_spawn(&tb, b, read_until_cancelled, &r), 0);
	ck_assert_int_eq(h_join_within(tb, NULL, WAIT_MS), -ETIMEDOUT);
	pthread_mutex_unlock(&w.m);
	ck_assert_int_eq(h_join_within(ta, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_MARK(1));
	ck_assert_int_eq(intr_token_free(a), 0);
	ck_assert_int_eq(intr_token_free(b), 0);
	h_close_pipe(r.fds);
}
END_TEST

/* With no room to queue signal details, the kernel delivers our signal
 * as if from kill() by nobody.  It must still count as ours: with SIGUSR1
 * at its default disposition, passing it on would kill the process. */
static void *wrapped_read(intr_ctx *ctx, void *arg)
{
	struct reader *r = arg;
	char b;

	atomic_store(&r->tid, h_gettid());
	atomic_store(&r->started, 1);
	return BODY_MARK(intr_read(ctx, r->fds[0], &b, 1) == -ECANCELED);
}

START_TEST(signal_details_lost)
{
	struct rlimit rl = { 0, 0 };
	int i;

	signal(SIGUSR1, SIG_DFL);
	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &rl), 0);
	for (i = 0; i < h_scale(200); i++) {
		intr_token *tok = h_new_token(NULL);
		struct reader r;
		intr_task *t;
		void *res;

		reader_init(&r);
		ck_assert_int_eq(intr_spawn(&t, tok, i % 2 ? wrapped_read :
					    read_until_cancelled, &r), 0);
		ck_assert(h_wait_atomic(&r.started, 1, WAIT_MS));
		ck_assert_msg(h_wait_blocked(atomic_load(&r.tid), SYS_read,
					     WAIT_MS),
			      "iteration %d: the body never blocked in read", i);
		ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
		ck_assert_ptr_ne(res, BODY_MARK(0));	/* wrapper: reason */
		ck_assert_int_eq(intr_token_free(tok), 0);
		h_close_pipe(r.fds);
	}
}
END_TEST

/* The other way round: once the library's own signal has been delivered
 * with its details, a foreign one whose details were lost is the
 * application's.  One worker, so the worker that took an ordinary cancel
 * is the one the application's sigqueue() then reaches (the test thread
 * blocks SIGUSR1); three rounds. */
static atomic_int app_usr1;

static void count_usr1(int signo)
{
	(void)signo;
	atomic_fetch_add(&app_usr1, 1);
}

START_TEST(signal_details_lost_foreign)
{
	struct rlimit lim, none;
	struct intr_config cfg;
	sigset_t usr1;
	int round;

	intr_config_default(&cfg);
	cfg.max_workers = 1;
	cfg.resend_us = 1000000;	/* one signal per cancel */
	ck_assert_int_eq(intr_configure(&cfg), 0);
	signal(SIGUSR1, count_usr1);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_SIGPENDING, &lim), 0);
	none = lim;
	none.rlim_cur = 0;	/* the hard limit stays: it comes back */
	for (round = 0; round < 3; round++) {
		intr_token *a = h_new_token(NULL), *b = h_new_token(NULL);
		union sigval v = { .sival_int = 7 };
		struct reader ra, rb;
		intr_task *ta, *tb;

		/* An ordinary cancel, details intact. */
		reader_init(&ra);
		ck_assert_int_eq(intr_spawn(&ta, a, read_until_cancelled, &ra),
				 0);
		ck_assert(h_spin_atomic(&ra.started, 1, WAIT_MS));
		ck_assert(h_wait_sleeping(atomic_load(&ra.tid), WAIT_MS));
		ck_assert_int_eq(intr_token_cancel(a), 0);
		ck_assert_int_eq(h_join_within(ta, NULL, WAIT_MS), -ECANCELED);

		/* The same worker, blocked again; the application's
		 * sigqueue() finds no room for its details. */
		reader_init(&rb);
		ck_assert_int_eq(intr_spawn(&tb, b, read_until_cancelled, &rb),
				 0);
		ck_assert(h_spin_atomic(&rb.started, 1, WAIT_MS));
		ck_assert(h_wait_sleeping(atomic_load(&rb.tid), WAIT_MS));
		ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &none), 0);
		ck_assert_int_eq(sigqueue(getpid(), SIGUSR1, v), 0);
		ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &lim), 0);
		ck_assert_msg(h_wait_atomic(&app_usr1, round + 1, 2000),
			      "round %d: the application's signal, its details "
			      "lost, never reached its handler", round);
		ck_assert_int_eq(intr_token_cancel(b), 0);
		ck_assert_int_eq(h_join_within(tb, NULL, WAIT_MS), -ECANCELED);
		ck_assert_int_eq(intr_token_free(a), 0);
		ck_assert_int_eq(intr_token_free(b), 0);
		h_close_pipe(ra.fds);
		h_close_pipe(rb.fds);
	}
}
END_TEST

/* Wait for a child with a bound; its exit status says what it saw. */
static int child_status(pid_t pid)
{
	uint64_t end = h_deadline(WAIT_MS);
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
		if (h_passed(end)) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			ck_abort_msg("child did not finish in %d ms", WAIT_MS);
		}
		h_sleep_ms(1);
	}
}

/* In a child, the parent's running calls are over: joining one returns
 * -ECANCELED at once, and its token can be freed. */
START_TEST(fork_ends_parents_calls)
{
	intr_token *tok = h_new_token(NULL);
	struct reader r;
	intr_task *t;
	pid_t pid;

	reader_init(&r);
	ck_assert_int_eq(intr_spawn(&t, tok, read_until_cancelled, &r), 0);
	ck_assert(h_spin_atomic(&r.started, 1, WAIT_MS));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int code = 0;

		if (intr_tryjoin(t, NULL) != -ECANCELED)
			code |= 1;
		if (intr_token_free(tok) != 0)
			code |= 2;
		if (run_interruptible(NULL, count_body, NULL, NULL) != 0)
			code |= 4;
		_exit(code);
	}
	ck_assert_int_eq(child_status(pid), 0);
	/* The parent's call is untouched. */
	ck_assert(!h_task_done(t));
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, NULL, WAIT_MS), -ECANCELED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(r.fds);
}
END_TEST

/* A body that forks goes on in the child as a running call. */
static void *forking_body(intr_ctx *ctx, void *arg)
{
	pid_t pid;

	/* The threads the call started, settled first (b_others_asleep). */
	b_others_asleep(5000);
	pid = fork();

	if (pid == 0) {
		int code = 0;

		if (intr_reason(ctx) != 0 || intr_cancelled(ctx))
			code |= 1;
		if (!intr_ctx_token(ctx))
			code |= 2;
		if (run_interruptible(intr_ctx_token(ctx), count_body, NULL,
				      NULL) != 0)
			code |= 4;
		_exit(code);
	}
	return BODY_MARK(pid > 0 ? child_status(pid) : 99);
}

START_TEST(fork_from_body)
{
	void *res;

	ck_assert_int_eq(run_interruptible(NULL, forking_body, NULL, &res), 0);
	ck_assert_ptr_eq(res, BODY_MARK(0));
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("robust");
	TCase *tc;

	tc = h_tcase(s, "pool", TEST_TIMEOUT);
	tcase_add_test(tc, cancelled_token_full_pool);
	tc = h_tcase(s, "masks", TEST_TIMEOUT);
	tcase_add_test(tc, finalizer_changes_mask);
	tc = h_tcase(s, "wakeups", TEST_TIMEOUT);
	tcase_add_test(tc, deadline_while_wakeup_blocks);
	tc = h_tcase(s, "signals", TEST_TIMEOUT);
	/* Not under valgrind, which takes every signal itself and hands it
	 * on: with no room to queue signal details (the point of the test)
	 * the interrupt never reaches the library's handler there, and the
	 * cancelled call waits for ever.  It runs natively, under ASan and
	 * under TSan. */
	if (!h_under_valgrind())
		tcase_add_test(tc, signal_details_lost);
	if (!h_under_valgrind())
		tcase_add_test(tc, signal_details_lost_foreign);
	tc = h_tcase(s, "fork", TEST_TIMEOUT);
	tcase_set_tags(tc, H_TAG_THREADED_FORK);
	tcase_add_test(tc, fork_ends_parents_calls);
	tcase_add_test(tc, fork_from_body);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
