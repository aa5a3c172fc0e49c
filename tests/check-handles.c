/* SPDX-License-Identifier: MIT */
/*
 * Handle suite: the lives of tokens, tasks and contexts as the API hands
 * them out.
 *
 * 1. intr_task_fd racing intr_join, RACE_ROUNDS rounds (INTR_TEST_SCALE
 *    scales them; at 500, 100,000 rounds): one thread asks for the task's
 *    fd while another joins it, within a few microseconds of each other.
 *    Whichever wins, no fd may be left open after the join (the fd
 *    intr_task_fd returned is closed by the join, or there was none), and
 *    nothing may be written to an fd the process opens after the join
 *    (one that reuses the number of a closed eventfd).  The same for
 *    intr_task_cancel, intr_tryjoin and a second intr_join: each acts or
 *    is refused, and exactly one join takes the task.  Under
 *    AddressSanitizer and ThreadSanitizer (make check-asan, check-tsan)
 *    the same rounds show any use of a task the join has freed.  The
 *    same for intr_token_free racing every other token function, a
 *    deadline that fires, a child token and a call bound to the token.
 * 2. Stale handles: a freed token, a joined task, the own token of an
 *    ended call and the ctx of an ended call are refused (-EINVAL, false,
 *    NULL) by every function that takes them, however many tokens, tasks
 *    and calls were made since, and whatever memory the new ones got; and
 *    the new ones, which the allocator places where the old ones were, are
 *    untouched by what was done with the stale copies.  (The suite runs
 *    with glibc's per-thread cache off, GLIBC_TUNABLES, so that memory
 *    freed is what the next object of its size gets, as at its worst.)
 * 3. fork(): every call of the parent has ended in the child: one still
 *    running there returns -ECANCELED from intr_tryjoin, one that had
 *    finished its own result, never -EBUSY.
 *
 * Every wait is bounded.
 */
#include "config.h"
#include "harness.h"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define RACE_ROUNDS	20000	/* INTR_TEST_SCALE=500: 100,000 */
#define STALE_ROUNDS	20000	/* new tokens and tasks after a free */
#define FORK_RUNNING	40	/* the parent's calls at the fork: running */
#define FORK_DONE	40	/* and finished, not joined */
#define WAIT_MS		5000
#define CHILD_WAIT_S	10
#define TEST_TIMEOUT	300

/* ------------------------------------------------------------ helpers */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own */
}

/* waitpid, bounded by ms: the child is killed and the test fails if it
 * outlives it. */
static void wait_child(pid_t pid, int *status, unsigned ms)
{
	uint64_t end = h_deadline(ms);
	pid_t r;

	while ((r = waitpid(pid, status, WNOHANG)) == 0) {
		if (h_passed(end)) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			ck_abort_msg("the child did not end within %u ms", ms);
		}
		h_sleep_ms(1);
	}
	ck_assert_int_eq(r, pid);
}

/* With two CPUs or more, the test thread on the first it may use and the
 * racing thread on the second, so that the two really run at once (on one
 * CPU, one of them would mostly run its whole step before the other
 * starts).  Returns the racing thread's CPU, or -1. */
static int pin_pair(void)
{
	cpu_set_t set, one;
	int c, first = -1;

	ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof(set),
						&set), 0);
	for (c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (first >= 0)
			break;
		first = c;
	}
	if (c == CPU_SETSIZE)
		return -1;
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof(one),
						&one), 0);
	return c;
}

static void pin_to(int cpu)
{
	cpu_set_t one;

	if (cpu < 0)
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
}

static void futex_wait_ne(atomic_int *w, int val, unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	if (atomic_load(w) == val)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake_all(atomic_int *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ------------------------------------------ 1. intr_task_fd vs intr_join */

struct fd_race {
	atomic_int round;	/* the round the fd thread is to run */
	atomic_int ready;	/* the round it is about to run */
	atomic_int finished;	/* the round it has run */
	_Atomic(intr_task *) task;
	uint64_t spin_ns;	/* how long it waits before intr_task_fd */
	int fd;			/* what intr_task_fd returned */
	int cpu;		/* where it runs, -1: anywhere */
	int op;			/* 0 intr_task_fd, 1 intr_task_cancel,
				 * 2 intr_tryjoin, 3 intr_join */
};

static void *fd_thread(void *p)
{
	struct fd_race *r = p;
	int k = 0;

	pin_to(r->cpu);
	for (;;) {
		uint64_t end = h_deadline(WAIT_MS);

		while (atomic_load(&r->round) == k) {
			if (h_passed(end))
				return NULL;
			futex_wait_ne(&r->round, k, 100);
		}
		k = atomic_load(&r->round);
		if (k < 0)
			return NULL;
		atomic_store(&r->ready, k);
		h_spin_ns(r->spin_ns);
		switch (r->op) {
		case 1:
			r->fd = intr_task_cancel(atomic_load(&r->task));
			break;
		case 2:
			r->fd = intr_tryjoin(atomic_load(&r->task), NULL);
			break;
		case 3:
			r->fd = intr_join(atomic_load(&r->task), NULL);
			break;
		default:
			r->fd = intr_task_fd(atomic_load(&r->task));
		}
		atomic_store(&r->finished, k);
		futex_wake_all(&r->finished);
	}
}

static void *flag_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	atomic_store((atomic_int *)p, 1);
	return p;
}

START_TEST(task_fd_join_race)
{
	long rounds = h_scale(RACE_ROUNDS), got_fd = 0, refused = 0;
	long leaked = 0, written = 0, other = 0;
	struct fd_race r = { .fd = -1 };
	struct h_rng rng;
	int fds0, fds1, k;
	pthread_t th;

	h_rng_seed(&rng, "task_fd_join_race");
	r.cpu = pin_pair();
	/* The library's own fds (the service timer) first. */
	ck_assert_int_eq(run_interruptible(NULL, flag_body, &(atomic_int){ 0 },
					   NULL), 0);
	fds0 = count_fds();
	ck_assert_int_eq(pthread_create(&th, NULL, fd_thread, &r), 0);
	for (k = 1; k <= rounds; k++) {
		atomic_int body_done = 0;
		intr_task *t = NULL;
		uint64_t v, end;
		void *res = NULL;
		int decoy, ret;

		ck_assert_int_eq(intr_spawn(&t, NULL, flag_body, &body_done),
				 0);
		ck_assert(h_spin_atomic(&body_done, 1, WAIT_MS));
		r.spin_ns = h_rng_below(&rng, 2) ? h_rng_below(&rng, 3000) : 0;
		atomic_store(&r.task, t);
		atomic_store(&r.round, k);
		futex_wake_all(&r.round);
		/* Join within a few microseconds of the other thread's
		 * intr_task_fd, on either side of it. */
		end = h_deadline(WAIT_MS);
		while (atomic_load(&r.ready) != k)
			ck_assert_msg(!h_passed(end), "round %d: the fd thread "
				      "did not start", k);
		if (!r.spin_ns)
			h_spin_ns(h_rng_below(&rng, 3000));
		ret = intr_join(t, &res);
		/* Opened after the join: it may get the number of the
		 * task's eventfd, which nobody may write to any more. */
		decoy = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ck_assert_int_ge(decoy, 0);
		while (atomic_load(&r.finished) != k) {
			ck_assert_msg(!h_passed(end), "round %d: intr_task_fd "
				      "did not return", k);
			futex_wait_ne(&r.finished, k - 1, 100);
		}
		ck_assert_int_eq(ret, 0);
		ck_assert_ptr_eq(res, &body_done);
		if (r.fd >= 0) {
			got_fd++;
			if (r.fd != decoy && fcntl(r.fd, F_GETFD) >= 0) {
				leaked++;
				close(r.fd);
			}
		} else if (r.fd == -EINVAL) {
			refused++;
		} else {
			other++;
		}
		if (read(decoy, &v, sizeof(v)) == sizeof(v))
			written++;
		close(decoy);
	}
	atomic_store(&r.round, -1);
	futex_wake_all(&r.round);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	fds1 = count_fds();
	printf("task_fd_join_race: %ld rounds: intr_task_fd got the fd %ld "
	       "times, -EINVAL %ld, other %ld; %ld fds still open after the "
	       "join, %ld writes into an fd opened after it; fds %d before, "
	       "%d after\n", rounds, got_fd, refused, other, leaked, written,
	       fds0, fds1);
	fflush(stdout);
	ck_assert_msg(other == 0, "intr_task_fd returned neither an fd nor "
		      "-EINVAL %ld times", other);
	ck_assert_msg(leaked == 0, "%ld of %ld rounds: the fd returned by "
		      "intr_task_fd was still open after the join", leaked,
		      rounds);
	ck_assert_msg(written == 0, "%ld of %ld rounds: the task's eventfd "
		      "write landed in an fd opened after the join", written,
		      rounds);
	ck_assert_int_eq(fds1, fds0);
	if (h_full_scale() && r.cpu >= 0)
		ck_assert_msg(got_fd > 0 && refused > 0, "the race went one "
			      "way only: %ld fds, %ld refused", got_fd,
			      refused);
}
END_TEST

/* 1a. The other entry points that take a task, each racing intr_join the
 * same way: intr_task_cancel, intr_tryjoin and a second intr_join.  Each
 * acts on the live task or is refused with -EINVAL (intr_tryjoin may also
 * find the call not yet done: -EBUSY); exactly one of the two threads
 * joins; nothing uses the task after it was freed (ASan, in make
 * check-asan, would say so). */
START_TEST(task_ops_join_race)
{
	static const char *const op_name[] = { "", "intr_task_cancel",
					       "intr_tryjoin", "intr_join" };
	long rounds = h_scale(RACE_ROUNDS / 2);
	long acted[4] = { 0 }, refused[4] = { 0 };
	struct fd_race r = { .fd = -1 };
	struct h_rng rng;
	pthread_t th;
	int k;

	h_rng_seed(&rng, "task_ops_join_race");
	r.cpu = pin_pair();
	ck_assert_int_eq(pthread_create(&th, NULL, fd_thread, &r), 0);
	for (k = 1; k <= rounds; k++) {
		atomic_int body_done = 0;
		intr_task *t = NULL;
		uint64_t end;
		void *res = NULL;
		int ret, op = 1 + (int)h_rng_below(&rng, 3);

		ck_assert_int_eq(intr_spawn(&t, NULL, flag_body, &body_done),
				 0);
		ck_assert(h_spin_atomic(&body_done, 1, WAIT_MS));
		r.op = op;
		r.spin_ns = h_rng_below(&rng, 2) ? h_rng_below(&rng, 3000) : 0;
		atomic_store(&r.task, t);
		atomic_store(&r.round, k);
		futex_wake_all(&r.round);
		end = h_deadline(WAIT_MS);
		while (atomic_load(&r.ready) != k)
			ck_assert_msg(!h_passed(end), "round %d: the other "
				      "thread did not start", k);
		if (!r.spin_ns)
			h_spin_ns(h_rng_below(&rng, 3000));
		ret = intr_join(t, &res);
		while (atomic_load(&r.finished) != k) {
			ck_assert_msg(!h_passed(end), "round %d: %s did not "
				      "return", k, op_name[op]);
			futex_wait_ne(&r.finished, k - 1, 100);
		}
		/* A cancel that lands before the body has returned (it has
		 * only said it runs) makes the call cancelled. */
		ck_assert_msg(ret == 0 || ret == -EINVAL ||
			      (op == 1 && ret == -ECANCELED), "round %d: "
			      "intr_join returned %d beside %s", k, ret,
			      op_name[op]);
		if (ret == 0 || ret == -ECANCELED)
			ck_assert_ptr_eq(res, &body_done);
		switch (op) {
		case 1:
			ck_assert_msg(r.fd == 0 || r.fd == -EINVAL, "round %d: "
				      "intr_task_cancel returned %d", k, r.fd);
			ck_assert_msg(ret == 0 || ret == -ECANCELED, "round %d: "
				      "intr_join returned %d beside "
				      "intr_task_cancel", k, ret);
			break;
		case 2:
			ck_assert_msg(r.fd == 0 || r.fd == -EBUSY ||
				      r.fd == -EINVAL, "round %d: intr_tryjoin "
				      "returned %d", k, r.fd);
			/* One join, and one only, took the task. */
			ck_assert_msg((r.fd == 0) != (ret == 0), "round %d: "
				      "intr_tryjoin %d, intr_join %d", k, r.fd,
				      ret);
			break;
		default:
			ck_assert_msg(r.fd == 0 || r.fd == -EINVAL, "round %d: "
				      "the second intr_join returned %d", k,
				      r.fd);
			ck_assert_msg((r.fd == 0) != (ret == 0), "round %d: "
				      "both joins returned %d, %d", k, r.fd,
				      ret);
		}
		if (r.fd == 0)
			acted[op]++;
		else
			refused[op]++;
	}
	atomic_store(&r.round, -1);
	futex_wake_all(&r.round);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	printf("task_ops_join_race: %ld rounds: intr_task_cancel acted %ld, "
	       "refused %ld; intr_tryjoin joined %ld, not %ld; second "
	       "intr_join joined %ld, refused %ld\n", rounds, acted[1],
	       refused[1], acted[2], refused[2], acted[3], refused[3]);
	fflush(stdout);
}
END_TEST

/* ------------------------------ 1b. intr_token_free vs everything else */

#define FREE_ROUNDS	20000	/* INTR_TEST_SCALE=500: 100,000 */

struct free_race {
	atomic_int round, ready, finished;
	_Atomic(intr_token *) tok;
	uint64_t spin_ns;
	int cpu;		/* where the other thread runs, -1: anywhere */
	int bad;		/* an unexpected result, or 0 */
	long spawned, refused;
};

static const int key_race;

static void *nop_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	return p;
}

/* Everything that takes a token, on one another thread is freeing: each
 * either acts on the live token or is refused. */
static void *free_race_thread(void *p)
{
	struct free_race *r = p;
	int k = 0;

	pin_to(r->cpu);
	for (;;) {
		uint64_t end = h_deadline(WAIT_MS);
		intr_token *tok, *child = NULL;
		intr_task *t = NULL;
		int a, b, c, d, e, f;

		while (atomic_load(&r->round) == k) {
			if (h_passed(end))
				return NULL;
			futex_wait_ne(&r->round, k, 100);
		}
		k = atomic_load(&r->round);
		if (k < 0)
			return NULL;
		tok = atomic_load(&r->tok);
		atomic_store(&r->ready, k);
		h_spin_ns(r->spin_ns);
		a = intr_token_cancel_after(tok, r->spin_ns);
		b = intr_token_set_value(tok, &key_race, r);
		c = intr_token_reason(tok);
		d = intr_token_new(&child, tok);
		if (!d)
			intr_token_free(child);
		e = intr_spawn(&t, tok, nop_body, r);
		if (!e) {
			r->spawned++;
			intr_join(t, NULL);
		}
		f = intr_token_cancel(tok);
		if ((a && a != -EINVAL) || (b && b != -EINVAL) ||
		    (c && c != -ETIMEDOUT && c != -EINVAL) ||
		    (d && d != -EINVAL) || (e && e != -EINVAL) ||
		    (f && f != -EINVAL))
			r->bad = a ? a : b ? b : c ? c : d ? d : e ? e : f;
		r->refused += f == -EINVAL;
		atomic_store(&r->finished, k);
		futex_wake_all(&r->finished);
	}
}

/* A token freed while another thread arms a deadline on it (so the
 * service thread may fire it), sets a value, makes a child, binds a call,
 * cancels it: no use of the freed token (AddressSanitizer,
 * ThreadSanitizer), no value left behind (LeakSanitizer), every result
 * one the API documents; the free retries while a child or call is
 * bound. */
START_TEST(token_free_race)
{
	long rounds = h_scale(FREE_ROUNDS), busy = 0;
	struct free_race r = { .bad = 0 };
	struct h_rng rng;
	pthread_t th;
	int k;

	h_rng_seed(&rng, "token_free_race");
	r.cpu = pin_pair();
	ck_assert_int_eq(pthread_create(&th, NULL, free_race_thread, &r), 0);
	for (k = 1; k <= rounds; k++) {
		intr_token *tok = h_new_token(NULL);
		uint64_t end = h_deadline(WAIT_MS);
		int ret;

		r.spin_ns = h_rng_below(&rng, 3000);
		atomic_store(&r.tok, tok);
		atomic_store(&r.round, k);
		futex_wake_all(&r.round);
		while (atomic_load(&r.ready) != k)
			ck_assert_msg(!h_passed(end), "round %d: the other "
				      "thread did not start", k);
		h_spin_ns(h_rng_below(&rng, 3000));
		while ((ret = intr_token_free(tok)) == -EBUSY) {
			busy++;
			ck_assert_msg(!h_passed(end), "round %d: the token "
				      "stayed busy", k);
		}
		ck_assert_int_eq(ret, 0);
		while (atomic_load(&r.finished) != k) {
			ck_assert_msg(!h_passed(end), "round %d: the other "
				      "thread did not finish", k);
			futex_wait_ne(&r.finished, k - 1, 100);
		}
		ck_assert_msg(r.bad == 0, "round %d: a call on the token being "
			      "freed returned %d", k, r.bad);
		ck_assert_int_eq(intr_token_cancel(tok), -EINVAL);
	}
	atomic_store(&r.round, -1);
	futex_wake_all(&r.round);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	printf("token_free_race: %ld rounds: %ld calls bound before the "
	       "free, %ld cancels after it (refused), %ld frees retried "
	       "while busy\n", rounds, r.spawned, r.refused, busy);
	fflush(stdout);
	if (h_full_scale() && r.cpu >= 0)
		ck_assert_msg(r.refused > 0 && r.refused < rounds, "the race "
			      "went one way only: %ld of %ld cancels refused",
			      r.refused, rounds);
}
END_TEST

/* ------------------------------------------------------- 2. stale handles */

static const int key_a, key_b;

static void *done_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	return p;
}

/* Every token function on a handle that names no live token: -EINVAL,
 * errno untouched, nothing made. */
static void assert_token_dead(intr_token *stale)
{
	intr_token *out = NULL;
	intr_task *task = NULL;

	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_reason(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel_after(stale, 1000000));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_set_value(stale, &key_a, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(&out, stale));
	ck_assert_ptr_null(out);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_spawn(&task, stale, done_body, NULL));
	ck_assert_ptr_null(task);
}

/* A freed token's value, after the allocator handed its memory to new
 * tokens: never accepted again, never acting on a new token. */
START_TEST(token_freed_stays_dead)
{
	long rounds = h_scale(STALE_ROUNDS), k;
	intr_token *stale = h_new_token(NULL), *fresh;

	ck_assert_int_eq(intr_token_free(stale), 0);
	assert_token_dead(stale);
	for (k = 0; k < rounds; k++) {
		int ret;

		fresh = h_new_token(NULL);
		ret = intr_token_cancel(stale);
		ck_assert_msg(ret == -EINVAL, "round %ld: intr_token_cancel("
			      "freed token) returned %d%s", k, ret,
			      intr_token_reason(fresh) ? " and cancelled a new "
			      "token" : "");
		ck_assert_msg(intr_token_reason(fresh) == 0, "round %ld: the "
			      "cancel of the freed token reached a new one", k);
		ck_assert_msg(fresh != stale, "round %ld: a new token has the "
			      "freed token's value", k);
		if (k % 1000 == 0) {
			assert_token_dead(stale);
			ck_assert_int_eq(intr_token_set_value(fresh, &key_b,
							      &k), 0);
		}
		ck_assert_int_eq(intr_token_free(fresh), 0);
	}
	assert_token_dead(stale);
}
END_TEST

/* A body held until its gate opens (or its call is cancelled). */
struct held {
	struct h_gate g;
	_Atomic(intr_ctx *) ctx;
	_Atomic(intr_token *) own;
};

static void *held_body(intr_ctx *ctx, void *p)
{
	struct held *h = p;

	atomic_store(&h->ctx, ctx);
	atomic_store(&h->own, intr_ctx_token(ctx));
	h_gate_announce(&h->g);
	return h_gate_wait(ctx, &h->g, WAIT_MS, true);
}

static intr_task *start_held(struct held *h)
{
	intr_task *t = NULL;

	memset(h, 0, sizeof(*h));
	h_gate_init(&h->g);
	ck_assert_int_eq(intr_spawn(&t, NULL, held_body, h), 0);
	h_gate_wait_up(&h->g, WAIT_MS);
	return t;
}

static void finish_held(struct held *h, intr_task *t)
{
	void *res = NULL;

	h_gate_open(&h->g);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	h_gate_fini(&h->g);
}

static void assert_task_dead(intr_task *stale)
{
	void *res = BODY_MARK(7);

	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_fd(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_tryjoin(stale, &res));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_join(stale, &res));
	ck_assert_ptr_eq(res, BODY_MARK(7));
}

/* A joined task's value, and its call's own token, while new calls run
 * in the memory the old one had: refused, and the new calls run on
 * uncancelled.  Then many more tasks, each joined. */
START_TEST(task_joined_stays_dead)
{
	long rounds = h_scale(STALE_ROUNDS), k;
	intr_task *stale, *fresh;
	intr_token *stale_own;
	struct held h;

	stale = start_held(&h);
	stale_own = atomic_load(&h.own);
	ck_assert_ptr_nonnull(stale_own);
	finish_held(&h, stale);
	assert_task_dead(stale);
	assert_token_dead(stale_own);

	fresh = start_held(&h);
	CHECK_KEEPS_ERRNO(-EINVAL, intr_task_cancel(stale));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(stale_own));
	/* The new call was not cancelled through either stale value. */
	ck_assert_int_eq(intr_token_reason(atomic_load(&h.own)), 0);
	assert_task_dead(stale);
	assert_token_dead(stale_own);
	ck_assert(fresh != stale);
	ck_assert(atomic_load(&h.own) != stale_own);
	finish_held(&h, fresh);

	for (k = 0; k < rounds; k++) {
		atomic_int done = 0;
		void *res = NULL;

		ck_assert_int_eq(intr_spawn(&fresh, NULL, flag_body, &done), 0);
		ck_assert_msg(fresh != stale, "round %ld: a new task has the "
			      "joined task's value", k);
		ck_assert_msg(intr_task_cancel(stale) == -EINVAL, "round %ld: "
			      "intr_task_cancel(joined task) accepted", k);
		ck_assert_msg(intr_token_cancel(stale_own) == -EINVAL,
			      "round %ld: intr_token_cancel(an ended call's "
			      "token) accepted", k);
		if (k % 1000 == 0)
			assert_task_dead(stale);
		ck_assert_msg(intr_join(fresh, &res) == 0, "round %ld: a new "
			      "call was cancelled", k);
		ck_assert_ptr_eq(res, &done);
	}
	assert_task_dead(stale);
	assert_token_dead(stale_own);
}
END_TEST

/* What a later call on the same worker sees through an ended call's ctx:
 * nothing. */
struct stale_ctx {
	intr_ctx *stale;	/* the first call's */
	intr_ctx *mine;
	bool cancelled_stale, cancelled_mine;
	int reason_stale, reason_mine;
	intr_token *token_stale;
	int defer_stale;
	void *value_stale;
	int fin_ran;
};

static void count_fin(void *p)
{
	((struct stale_ctx *)p)->fin_ran++;
}

static void *ctx_first(intr_ctx *ctx, void *p)
{
	struct stale_ctx *s = p;

	s->stale = ctx;
	return p;
}

static void *ctx_later(intr_ctx *ctx, void *p)
{
	struct stale_ctx *s = p;

	s->mine = ctx;
	intr_token_set_value(intr_ctx_token(ctx), &key_a, s);
	intr_token_cancel(intr_ctx_token(ctx));
	s->cancelled_stale = intr_cancelled(s->stale);
	s->reason_stale = intr_reason(s->stale);
	s->token_stale = intr_ctx_token(s->stale);
	s->value_stale = intr_ctx_value(s->stale, &key_a);
	s->defer_stale = intr_defer(s->stale, count_fin, s);
	s->cancelled_mine = intr_cancelled(ctx);
	s->reason_mine = intr_reason(ctx);
	return p;
}

/* One worker, so every call runs on the thread the first one ran on, the
 * first later one in the memory the first one had; the later calls cancel
 * themselves, so a stale ctx taken for theirs would report a cancel. */
START_TEST(ctx_ended_stays_dead)
{
	long rounds = h_scale(STALE_ROUNDS / 10), k;
	struct intr_config cfg;
	struct stale_ctx s;

	intr_config_default(&cfg);
	cfg.max_workers = 1;
	ck_assert_int_eq(intr_configure(&cfg), 0);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(run_interruptible(NULL, ctx_first, &s, NULL), 0);
	ck_assert_ptr_nonnull(s.stale);
	for (k = 0; k < rounds; k++) {
		s.mine = NULL;
		s.fin_ran = 0;
		ck_assert_int_eq(run_interruptible(NULL, ctx_later, &s, NULL),
				 -ECANCELED);
		ck_assert_msg(s.reason_stale == -EINVAL && !s.cancelled_stale &&
			      !s.token_stale && !s.value_stale &&
			      s.defer_stale == -EINVAL && s.fin_ran == 0,
			      "round %ld: an ended call's ctx was taken for "
			      "the running call's: reason %d, cancelled %d, "
			      "token %p, value %p, defer %d (%d finalizers)",
			      k, s.reason_stale, s.cancelled_stale,
			      (void *)s.token_stale, s.value_stale,
			      s.defer_stale, s.fin_ran);
		ck_assert_int_eq(s.reason_mine, -ECANCELED);
		ck_assert(s.cancelled_mine);
		ck_assert_msg(s.mine != s.stale, "round %ld: a later call got "
			      "the ended call's ctx", k);
	}
}
END_TEST

/* ------------------------------------------------------------- 3. fork */

START_TEST(fork_ends_every_parent_call)
{
	intr_task *done[FORK_DONE], *running[FORK_RUNNING];
	static struct held h[FORK_RUNNING];
	int i, status;
	pid_t pid;

	for (i = 0; i < FORK_RUNNING; i++)
		running[i] = start_held(&h[i]);
	for (i = 0; i < FORK_DONE; i++) {
		ck_assert_int_eq(intr_spawn(&done[i], NULL, done_body,
					    BODY_MARK(i + 1)), 0);
		h_wait_readable(intr_task_fd(done[i]), WAIT_MS, "a call");
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* No Check here: report by exit status. */
		int bad = 0;
		void *res;

		alarm(CHILD_WAIT_S);
		for (i = 0; i < FORK_RUNNING; i++)
			bad += intr_tryjoin(running[i], NULL) != -ECANCELED;
		for (i = 0; i < FORK_DONE; i++)
			bad += intr_tryjoin(done[i], &res) != 0 ||
			       res != BODY_MARK(i + 1);
		if (bad)
			fprintf(stderr, "child: %d of the parent's %d calls "
				"not ended\n", bad, FORK_RUNNING + FORK_DONE);
		_exit(bad ? 1 : 0);
	}
	wait_child(pid, &status, CHILD_WAIT_S * 1000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the child found parent calls not ended (status %#x)",
		      status);
	for (i = 0; i < FORK_RUNNING; i++)
		finish_held(&h[i], running[i]);
	for (i = 0; i < FORK_DONE; i++) {
		void *res = NULL;

		ck_assert_int_eq(intr_join(done[i], &res), 0);
		ck_assert_ptr_eq(res, BODY_MARK(i + 1));
	}
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("handles");
	TCase *tc;

	tc = h_tcase(s, "task_fd", TEST_TIMEOUT);
	tcase_add_test(tc, task_fd_join_race);
	tcase_add_test(tc, task_ops_join_race);
	tcase_add_test(tc, token_free_race);
	tc = h_tcase(s, "stale", TEST_TIMEOUT);
	tcase_add_test(tc, token_freed_stays_dead);
	tcase_add_test(tc, task_joined_stays_dead);
	tcase_add_test(tc, ctx_ended_stays_dead);
	tc = h_tcase(s, "fork", TEST_TIMEOUT);
	tcase_add_test(tc, fork_ends_every_parent_call);
	return s;
}

int main(int argc, char **argv)
{
	/* glibc's per-thread cache keeps memory freed for malloc() alone,
	 * away from calloc(), which the library uses for tasks: without it,
	 * a task's memory is what the next task gets, as a stale handle
	 * test wants.  Set before the process starts, hence the exec
	 * (valgrind has an allocator of its own, and would not follow it). */
	if (!getenv("GLIBC_TUNABLES") && !h_under_valgrind() && argc > 0) {
		setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
		execv("/proc/self/exe", argv);
	}
	return h_run_suite(make_suite());
}
