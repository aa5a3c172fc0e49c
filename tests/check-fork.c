/* SPDX-License-Identifier: MIT */
/*
 * fork() suite: the child of a process that used the library (idle workers
 * in the pool, a body blocked in another thread, another thread busy
 * spawning and cancelling) can use the library again; a body may fork
 * itself.  Every wait, in the parent and in the child, is bounded.
 *
 * Children never call Check: they report by exit status (and a line on
 * stderr), and the test process asserts on that status.
 */
#include "config.h"
#include "harness.h"
#include "bound.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

#define WAIT_MS		5000	/* bound on every wait */
#define CHILD_WAIT_MS	10000	/* bound on a child's whole life */
/* Counts at full scale; INTR_TEST_SCALE cuts them (h_scale) for the
 * checker builds, where every fork runs under valgrind too. */
#define CHILD_CANCELS	200	/* cancels of a blocked read in a child */
#define LOAD_FORKS	200
#define BODY_FORKS	50
#define RESEND_US	50
#define TEST_TIMEOUT	60

/* ------------------------------------------------------------ helpers */

static void configure(void)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.resend_us = RESEND_US;
	ck_assert_int_eq(intr_configure(&cfg), 0);
}

/* A body that returns *arg + 1 in *arg. */
static void *inc_body(intr_ctx *ctx, void *p)
{
	long *v = p;

	(void)ctx;
	(*v)++;
	return v;
}

/* A body blocked in a plain read() until cancelled or given a byte. */
struct blk {
	int fd;
	atomic_int started;
	bool saw_cancel;
	int bytes;
	int err;
};

static void *blocked_read(intr_ctx *ctx, void *p)
{
	struct blk *b = p;
	char c;

	atomic_store(&b->started, 1);
	while (!intr_cancelled(ctx)) {
		ssize_t n = read(b->fd, &c, 1);

		if (n == 1) {
			b->bytes++;
			return b;
		}
		if (n < 0 && errno == EINTR)
			continue;
		b->err = n < 0 ? errno : -1;
		return b;
	}
	b->saw_cancel = true;
	return b;
}

/* ------------------------------------------------- the child's side */

static void child_fail(int line, const char *what) __attribute__((noreturn));

static void child_fail(int line, const char *what)
{
	dprintf(2, "check-fork: child %d: line %d: %s\n", (int)getpid(), line,
		what);
	_exit(1);
}

#define CHILD_REQUIRE(cond) \
	do { \
		if (!(cond)) \
			child_fail(__LINE__, #cond); \
	} while (0)

static int child_join_within(intr_task *t, void **res, int ms)
{
	int fd = intr_task_fd(t);
	int ret;

	CHILD_REQUIRE(fd >= 0);
	ret = h_poll_in(fd, ms);
	if (ret == 0)
		child_fail(__LINE__, "call not done in time (lost cancel?)");
	if (ret < 0)
		CHILD_REQUIRE(errno == EINTR);
	return intr_join(t, res);
}

/* One cancel of a blocked read, spin_ns after the spawn. */
static void child_cancel_blocked(uint64_t spin_ns, bool wait_start)
{
	struct blk b = { 0 };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2], ret;

	CHILD_REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
	b.fd = fds[0];
	CHILD_REQUIRE(intr_token_new(&tok, NULL) == 0);
	CHILD_REQUIRE(intr_spawn(&t, tok, blocked_read, &b) == 0);
	if (wait_start)
		CHILD_REQUIRE(h_wait_atomic(&b.started, 1, WAIT_MS));
	h_spin_ns(spin_ns);
	CHILD_REQUIRE(intr_token_cancel(tok) == 0);
	ret = child_join_within(t, &res, WAIT_MS);
	CHILD_REQUIRE(ret == -ECANCELED);
	CHILD_REQUIRE(res == &b || (res == NULL && !atomic_load(&b.started)));
	CHILD_REQUIRE(b.err == 0 && b.bytes == 0);
	CHILD_REQUIRE(intr_token_free(tok) == 0);
	h_close_pipe(fds);
}

static void child_normal_call(void)
{
	intr_token *tok;
	void *res = NULL;
	long v = 41;

	CHILD_REQUIRE(run_interruptible(NULL, inc_body, &v, &res) == 0);
	CHILD_REQUIRE(res == &v && v == 42);
	CHILD_REQUIRE(intr_token_new(&tok, NULL) == 0);
	CHILD_REQUIRE(run_interruptible(tok, inc_body, &v, &res) == 0);
	CHILD_REQUIRE(res == &v && v == 43);
	CHILD_REQUIRE(intr_token_free(tok) == 0);
}

/* A deadline in the child (the library's timers work there too). */
static void child_deadline(void)
{
	struct blk b = { 0 };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2];

	CHILD_REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
	b.fd = fds[0];
	CHILD_REQUIRE(intr_token_new(&tok, NULL) == 0);
	CHILD_REQUIRE(intr_token_cancel_after(tok, 1000000) == 0);
	CHILD_REQUIRE(intr_spawn(&t, tok, blocked_read, &b) == 0);
	CHILD_REQUIRE(child_join_within(t, &res, WAIT_MS) == -ETIMEDOUT);
	CHILD_REQUIRE(intr_token_free(tok) == 0);
	h_close_pipe(fds);
}

/* What every child does with the library; exits 0 if all of it worked. */
static void child_exercise(int cancels) __attribute__((noreturn));

static void child_exercise(int cancels)
{
	int i;

	child_normal_call();
	child_cancel_blocked(0, true);
	for (i = 0; i < cancels; i++)
		child_cancel_blocked((uint64_t)(i * 7919 % 50) * 1000, i & 1);
	child_deadline();
	child_normal_call();
	_exit(0);
}

/* --------------------------------------------------- the parent's side */

/* Bounded waitpid: kill the child and fail if it outlives ms. */
static int wait_child(pid_t pid, int ms, const char *what)
{
	uint64_t end = h_deadline(ms);
	int status = 0;

	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 200000 };
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			ck_abort_msg("%s: waitpid: %s", what, strerror(errno));
		if (h_passed(end)) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("%s: child %d still running after %d ms "
				     "(deadlock after fork?)", what, (int)pid, ms);
		}
		nanosleep(&ts, NULL);
	}
}

static void assert_child_ok(int status, const char *what)
{
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "%s: child %s %d", what,
		      WIFEXITED(status) ? "exited with" : "killed by signal",
		      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static pid_t fork_exercise(int cancels)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	/* no Check call in the child: another thread may hold Check's lock */
	if (pid == 0)
		child_exercise(cancels);
	ck_assert_int_ge(pid, 0);
	return pid;
}

/* A blocked_read body on a fresh pipe, under a fresh token. */
static void spawn_blocked(struct blk *b, int fds[2], intr_token **tok,
			  intr_task **t)
{
	h_make_pipe(fds);
	b->fd = fds[0];
	ck_assert_int_eq(intr_token_new(tok, NULL), 0);
	ck_assert_int_eq(intr_spawn(t, *tok, blocked_read, b), 0);
}

static void parent_cancel_blocked(void)
{
	struct blk b = { 0 };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2];

	spawn_blocked(&b, fds, &tok, &t);
	ck_assert(h_wait_atomic(&b.started, 1, WAIT_MS));
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, &b);
	ck_assert(b.saw_cancel);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
}

static void parent_normal_call(void)
{
	void *res = NULL;
	long v = 1;

	ck_assert_int_eq(run_interruptible(NULL, inc_body, &v, &res), 0);
	ck_assert_ptr_eq(res, &v);
	ck_assert_int_eq(v, 2);
}

/* ---------------------------------- 1. fork after use, workers idle */

START_TEST(fork_after_use)
{
	pid_t pid;

	configure();
	parent_normal_call();
	parent_cancel_blocked();
	parent_normal_call();
	/* a worker is idle in the pool now */
	pid = fork_exercise((int)h_scale(CHILD_CANCELS));
	assert_child_ok(wait_child(pid, CHILD_WAIT_MS, "fork after use"),
			"fork after use");
	/* and the parent's library is untouched */
	parent_normal_call();
	parent_cancel_blocked();
}
END_TEST

/* ------------------------ 2. fork while a body is blocked in the parent */

START_TEST(fork_while_body_blocked)
{
	struct blk b = { 0 };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2];
	pid_t pid;

	configure();
	spawn_blocked(&b, fds, &tok, &t);
	ck_assert(h_wait_atomic(&b.started, 1, WAIT_MS));

	pid = fork_exercise((int)h_scale(CHILD_CANCELS));
	assert_child_ok(wait_child(pid, CHILD_WAIT_MS, "fork while blocked"),
			"fork while blocked");

	ck_assert_msg(!h_task_done(t),
		      "the parent's call ended during the fork");
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, &b);
	ck_assert(b.saw_cancel);
	ck_assert_int_eq(b.bytes, 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_close_pipe(fds);
	parent_normal_call();
}
END_TEST

/* ----------------- 3. fork while another thread spawns and cancels */

struct loader {
	atomic_int stop;
	atomic_int rounds;
	const char *failed;	/* the first step that went wrong */
};

/* The loader thread makes no Check call: Check's assertions keep
 * process-wide state that only the test's own thread may touch. */
#define LOADER_REQUIRE(l, cond)						\
	do {								\
		if (!(cond)) {						\
			(l)->failed = #cond;				\
			return NULL;					\
		}							\
	} while (0)

static void *loader_main(void *p)
{
	struct loader *l = p;
	unsigned k = 0;

	while (!atomic_load(&l->stop)) {
		struct blk b = { 0 };
		intr_token *tok;
		intr_task *t;
		void *res = NULL;
		long v = 1;
		int fds[2];

		LOADER_REQUIRE(l, pipe2(fds, O_CLOEXEC) == 0);
		b.fd = fds[0];
		LOADER_REQUIRE(l, intr_token_new(&tok, NULL) == 0);
		LOADER_REQUIRE(l, intr_spawn(&t, tok, blocked_read, &b) == 0);
		h_spin_ns((k++ * 7919) % 20000);
		LOADER_REQUIRE(l, intr_token_cancel(tok) == 0);
		LOADER_REQUIRE(l, h_poll_in(intr_task_fd(t), WAIT_MS) == 1);
		LOADER_REQUIRE(l, intr_join(t, &res) == -ECANCELED);
		LOADER_REQUIRE(l, intr_token_free(tok) == 0);
		h_close_pipe(fds);
		LOADER_REQUIRE(l, run_interruptible(NULL, inc_body, &v,
						    &res) == 0);
		LOADER_REQUIRE(l, res == &v && v == 2);
		atomic_fetch_add(&l->rounds, 1);
	}
	return NULL;
}

START_TEST(fork_under_load)
{
	struct loader l = { 0 };
	pthread_t th;
	int i;

	configure();
	parent_normal_call();
	ck_assert_int_eq(pthread_create(&th, NULL, loader_main, &l), 0);
	ck_assert(h_wait_atomic(&l.rounds, 1, WAIT_MS));
	for (i = 0; i < h_scale(LOAD_FORKS); i++) {
		char what[64];
		pid_t pid;

		snprintf(what, sizeof(what), "fork %d under load", i);
		pid = fork_exercise(2);
		assert_child_ok(wait_child(pid, CHILD_WAIT_MS, what), what);
	}
	atomic_store(&l.stop, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(!l.failed, "loader thread: %s failed", l.failed);
	printf("fork_under_load: %d forks, %d spawn/cancel rounds alongside\n",
	       (int)h_scale(LOAD_FORKS), atomic_load(&l.rounds));
	fflush(stdout);
	parent_cancel_blocked();
}
END_TEST

/* ----------------------------------------- 4. fork from inside a body */

struct fb_arg {
	int exec;		/* child: exec /bin/true instead of _exit(0) */
	pid_t pid;
	int status;
	int err;
	int eintr;
};

static void *fork_body(intr_ctx *ctx, void *p)
{
	struct fb_arg *a = p;

	(void)ctx;
	/* The threads the call started, settled first (b_others_asleep). */
	b_others_asleep(5000);
	a->pid = fork();
	if (a->pid == 0) {
		if (a->exec) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		_exit(0);
	}
	if (a->pid < 0) {
		a->err = errno;
		return a;
	}
	while (waitpid(a->pid, &a->status, 0) < 0) {
		if (errno != EINTR) {
			a->err = errno;
			break;
		}
		a->eintr++;
	}
	return a;
}

START_TEST(fork_from_body)
{
	intr_token *tok;
	int i;

	configure();
	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	fflush(NULL);
	for (i = 0; i < 2 * h_scale(BODY_FORKS); i++) {
		struct fb_arg a = { .exec = i & 1 };
		intr_task *t;
		void *res = NULL;

		ck_assert_int_eq(intr_spawn(&t, tok, fork_body, &a), 0);
		ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), 0);
		ck_assert_ptr_eq(res, &a);
		ck_assert_msg(a.err == 0, "fork/waitpid in a body: %s",
			      strerror(a.err));
		ck_assert_msg(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0,
			      "child forked in a body (%s): status %#x",
			      a.exec ? "exec /bin/true" : "_exit(0)", a.status);
		ck_assert_int_eq(a.eintr, 0);
	}
	ck_assert_int_eq(intr_token_free(tok), 0);
	parent_normal_call();
	parent_cancel_blocked();
}
END_TEST

/* --------------- 5. cancel a body that waits for the child it forked */

struct fw_arg {
	pid_t pid;
	atomic_int started;
	bool saw_cancel;
	bool reaped_early;
	int status;
	int err;
};

static void *fork_wait_body(intr_ctx *ctx, void *p)
{
	struct fw_arg *a = p;

	b_others_asleep(5000);
	a->pid = fork();
	if (a->pid == 0) {
		for (;;)
			pause();
	}
	if (a->pid < 0) {
		a->err = errno;
		return a;
	}
	atomic_store(&a->started, 1);
	while (!intr_cancelled(ctx)) {
		pid_t r = waitpid(a->pid, &a->status, 0);

		if (r == a->pid) {
			a->reaped_early = true;
			return a;
		}
		if (r < 0 && errno != EINTR) {
			a->err = errno;
			return a;
		}
	}
	a->saw_cancel = true;
	kill(a->pid, SIGKILL);
	while (waitpid(a->pid, &a->status, 0) < 0) {
		if (errno != EINTR) {
			a->err = errno;
			break;
		}
	}
	return a;
}

START_TEST(fork_body_cancel_waitpid)
{
	int i;

	configure();
	for (i = 0; i < h_scale(BODY_FORKS); i++) {
		struct fw_arg a = { 0 };
		intr_token *tok;
		intr_task *t;
		void *res = NULL;

		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		ck_assert_int_eq(intr_spawn(&t, tok, fork_wait_body, &a), 0);
		ck_assert(h_wait_atomic(&a.started, 1, WAIT_MS));
		h_spin_ns((uint64_t)(i * 7919 % 50) * 1000);
		ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(h_join_within(t, &res, WAIT_MS), -ECANCELED);
		ck_assert_ptr_eq(res, &a);
		ck_assert_int_eq(a.err, 0);
		ck_assert(!a.reaped_early);
		ck_assert(a.saw_cancel);
		ck_assert_msg(WIFSIGNALED(a.status) && WTERMSIG(a.status) == SIGKILL,
			      "child status %#x", a.status);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc;

	tc = h_tcase(s, "child", TEST_TIMEOUT);
	tcase_add_test(tc, fork_after_use);
	tcase_add_test(tc, fork_while_body_blocked);
	tcase_add_test(tc, fork_under_load);
	tc = h_tcase(s, "body", TEST_TIMEOUT);
	tcase_add_test(tc, fork_from_body);
	tcase_add_test(tc, fork_body_cancel_waitpid);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
