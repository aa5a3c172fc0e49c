/* SPDX-License-Identifier: MIT */
/*
 * Description: a body that forks goes on in the child as a running call:
 * what it does there must not complete the parent's call (the task's fd,
 * shared with the parent, stays unreadable), its deadline must fire in
 * the child as in the parent, and a wake-up action the parent's wake-up
 * thread runs at the fork must not hold the child's worker.
 */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS		5000
#define DEADLINE_NS	300000000u	/* 0.3 s */

/* ---------------------------------------- the fd of intr_task_fd */

struct fdcase {
	atomic_int go;		/* the parent made the task's fd */
	atomic_int child;	/* the child's pid, once forked */
	int ready[2];		/* the child's body says it returns */
	int rel[2];		/* lets the parent's body return */
	bool in_fin;		/* fork from a finalizer, not the body */
};

/* Fork; the child goes on and returns at once, the parent waits to be
 * told.  From the body, or from a finalizer. */
static void fork_and_return(struct fdcase *c)
{
	char b;
	pid_t pid;

	if (!b_wait_atomic(&c->go, 1, WAIT_MS))
		return;
	b_others_asleep(WAIT_MS);	/* no thread mid-allocation */
	pid = fork();
	if (pid == 0) {
		/* The child: the call returns here at once, and its worker
		 * goes on to complete the call it inherited. */
		if (write(c->ready[1], "c", 1) != 1)
			_exit(3);
		return;
	}
	atomic_store(&c->child, pid > 0 ? pid : -1);
	/* The parent: the call stays running until told. */
	while (read(c->rel[0], &b, 1) != 1)
		;
}

static void forking_fin(void *arg)
{
	fork_and_return(arg);
}

static void *forks_and_returns(intr_ctx *ctx, void *arg)
{
	struct fdcase *c = arg;

	if (c->in_fin)
		intr_defer(ctx, forking_fin, c);
	else
		fork_and_return(c);
	return NULL;
}

static void fd_case(bool in_fin)
{
	const char *what = in_fin ? "fd, fork in a finalizer" : "fd";
	struct fdcase c;
	intr_task *t;
	void *res = (void *)-1L;
	pid_t pid;
	int fd, ret;
	char st = 0, b;

	memset(&c, 0, sizeof(c));
	c.in_fin = in_fin;
	atomic_init(&c.go, 0);
	atomic_init(&c.child, 0);
	if (pipe(c.ready) || pipe(c.rel) ||
	    intr_spawn(&t, NULL, forks_and_returns, &c)) {
		tap_ok(false, "%s: set-up", what);
		return;
	}
	fd = intr_task_fd(t);
	atomic_store(&c.go, 1);
	ret = b_readable_within(c.ready[0], WAIT_MS) == 1 &&
	      read(c.ready[0], &b, 1) == 1 &&
	      b_wait_atomic(&c.child, 1, WAIT_MS);
	pid = atomic_load(&c.child);
	if (ret && pid > 0) {
		/* The child's worker, past its body: asleep once it has
		 * completed the call and waits for the next one. */
		uint64_t end = h_now_ns() + WAIT_MS * 1000000ull;

		while ((st = b_task_state(pid, pid)) != 'S' && st &&
		       h_now_ns() < end)
			b_sleep_ms(1);
	}
	tap_ok(ret && pid > 0 && st == 'S',
	       "%s: the child's copy of the call returned and its worker "
	       "went idle (state %c)", what, st ? st : '?');
	tap_ok(fd >= 0 && b_readable_within(fd, 0) == 0,
	       "%s: the parent's task fd is not readable while its call "
	       "still runs", what);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (write(c.rel[1], "r", 1) != 1)
		tap_diag("write: %s", strerror(errno));
	ret = b_join_within(t, &res, WAIT_MS);
	tap_ok(ret == 0 && res == NULL, "%s: the parent's call then "
	       "completes (join %d)", what, ret);
	close(c.ready[0]);
	close(c.ready[1]);
	close(c.rel[0]);
	close(c.rel[1]);
}

/* ---------------------------------------- a deadline in the child */

struct dlcase {
	int never[2];		/* nothing is ever written */
	bool wrapped;		/* intr_read, else plain read() */
};

static void *forks_and_waits(intr_ctx *ctx, void *arg)
{
	struct dlcase *d = arg;
	pid_t pid;
	char b;
	int st;

	b_others_asleep(WAIT_MS);	/* no thread mid-allocation */
	pid = fork();
	if (pid == 0) {
		/* The child: blocked until the call's deadline fires. */
		if (d->wrapped)
			_exit(intr_read(ctx, d->never[0], &b, 1) ==
			      -ETIMEDOUT ? 0 : 1);
		while (!intr_cancelled(ctx))
			if (read(d->never[0], &b, 1) == 1)
				_exit(2);
		_exit(intr_reason(ctx) == -ETIMEDOUT ? 0 : 3);
	}
	if (pid < 0)
		return (void *)-2L;
	/* The parent's body: the child's status, once its own deadline has
	 * fired too (it may come a little after the child's). */
	st = b_child_within(pid, WAIT_MS);
	intr_sleep(ctx, 2000000000ull * WAIT_MS / 1000);
	return (void *)(long)st;
}

static void deadline_case(bool wrapped)
{
	const char *what = wrapped ? "intr_read" : "plain read()";
	struct dlcase d = { .wrapped = wrapped };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int ret;

	if (pipe(d.never) || intr_token_new(&tok, NULL) ||
	    intr_token_cancel_after(tok, DEADLINE_NS) ||
	    intr_spawn(&t, tok, forks_and_waits, &d)) {
		tap_ok(false, "deadline: set-up");
		return;
	}
	ret = b_join_within(t, &res, 3 * WAIT_MS);
	tap_ok(ret == -ETIMEDOUT && (long)res == 0,
	       "deadline: a 0.3 s deadline fires in the child of a body "
	       "blocked in %s (child status %ld: %s)", what, (long)res,
	       (long)res == -1 ? "still blocked after 5 s" :
	       (long)res == 0 ? "-ETIMEDOUT" : "other");
	intr_token_free(tok);
	close(d.never[0]);
	close(d.never[1]);
}

/* ---------------------------------------- a wake-up running at the fork */

struct wkcase {
	atomic_int armed;	/* the body has registered both */
	atomic_int running;	/* the wake-up action has started */
	atomic_int forked;	/* the parent's body has forked */
	pid_t parent;
	int report[2];		/* each finalizer writes 'p' or 'c' */
};

/* A wake-up that takes a while (a PQcancel round trip): it runs on the
 * parent's wake-up thread until the body has forked. */
static void slow_wake(void *arg)
{
	struct wkcase *w = arg;

	atomic_store(&w->running, 1);
	b_wait_atomic(&w->forked, 1, WAIT_MS);
}

static void report_fin(void *arg)
{
	struct wkcase *w = arg;
	char b = getpid() == w->parent ? 'p' : 'c';

	if (write(w->report[1], &b, 1) != 1)
		_exit(4);
}

static void *forks_while_waking(intr_ctx *ctx, void *arg)
{
	struct wkcase *w = arg;
	pid_t pid;

	intr_defer(ctx, report_fin, w);
	intr_on_cancel_repeat(ctx, slow_wake, w);
	atomic_store(&w->armed, 1);
	if (!b_wait_atomic(&w->running, 1, WAIT_MS))
		return (void *)-1L;
	b_others_asleep(WAIT_MS);	/* no thread mid-allocation */
	pid = fork();
	if (pid == 0)
		return NULL;	/* goes on as the child's call */
	atomic_store(&w->forked, 1);
	return (void *)(long)pid;
}

static void waker_case(void)
{
	struct wkcase w = { .parent = getpid() };
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	char got[2] = { 0, 0 };
	int ret, n = 0;
	pid_t pid;

	if (pipe(w.report) || intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, forks_while_waking, &w)) {
		tap_ok(false, "wake-up at fork: set-up");
		return;
	}
	if (!b_wait_atomic(&w.armed, 1, WAIT_MS))
		tap_diag("wake-up at fork: the body did not start");
	intr_token_cancel(tok);
	ret = b_join_within(t, &res, WAIT_MS);
	pid = (pid_t)(long)res;
	tap_ok(ret == -ECANCELED && pid > 0,
	       "wake-up at fork: the parent's call ends cancelled (join %d, "
	       "child %d)", ret, (int)pid);
	while (n < 2 && b_readable_within(w.report[0], WAIT_MS) == 1 &&
	       read(w.report[0], &got[n], 1) == 1)
		n++;
	tap_ok((got[0] == 'c' || got[1] == 'c') &&
	       (got[0] == 'p' || got[1] == 'p'),
	       "wake-up at fork: the finalizer runs in the parent and in the "
	       "child (%d of 2: %c%c)", n, got[0] ? got[0] : '-',
	       got[1] ? got[1] : '-');
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (ret != B_TIMEOUT)
		intr_token_free(tok);
	close(w.report[0]);
	close(w.report[1]);
}

/* ---------------------------------------- a parent's task fd in a child */

static void *reads_until_told(intr_ctx *ctx, void *arg)
{
	int *rel = arg;
	char b;

	intr_read(ctx, rel[0], &b, 1);
	return NULL;
}

/* A child forked by a thread that is not a worker: the parent's call has
 * ended there, and its task fd in the child says so (the parent made one
 * before the fork), while the parent's stays unreadable. */
static void child_fd_case(void)
{
	int rel[2], fd, cfd, st, ret;
	intr_task *t;
	pid_t pid;

	if (pipe(rel) || intr_spawn(&t, NULL, reads_until_told, rel)) {
		tap_ok(false, "parent's fd in a child: set-up");
		return;
	}
	fd = intr_task_fd(t);
	b_others_asleep(WAIT_MS);	/* no thread mid-allocation */
	pid = fork();
	if (pid == 0) {
		cfd = intr_task_fd(t);
		if (b_readable_within(cfd, WAIT_MS) != 1)
			_exit(2);
		_exit(intr_tryjoin(t, NULL) == -ECANCELED ? 0 : 3);
	}
	st = pid > 0 ? b_child_within(pid, 3 * WAIT_MS) : -2;
	tap_ok(st == 0, "parent's fd in a child: readable there, the call "
	       "ended (child status %d: %s)", st,
	       st == 0 ? "ok" : st == 2 ? "intr_task_fd not readable" :
	       st == 3 ? "tryjoin" : "killed");
	tap_ok(fd >= 0 && b_readable_within(fd, 0) == 0,
	       "parent's fd in a child: the parent's stays unreadable while "
	       "its call runs");
	if (write(rel[1], "r", 1) != 1)
		tap_diag("write: %s", strerror(errno));
	ret = b_join_within(t, NULL, WAIT_MS);
	tap_ok(ret == 0, "parent's fd in a child: the parent's call then "
	       "completes (join %d)", ret);
	close(rel[0]);
	close(rel[1]);
}

int main(void)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.idle_ms = 60000;	/* a worker idle in a child stays there */
	intr_configure(&cfg);
	fd_case(false);
	fd_case(true);
	deadline_case(true);
	deadline_case(false);
	waker_case();
	child_fd_case();
	return tap_done();
}
