/* SPDX-License-Identifier: MIT */
/*
 * Description: a fork from a scope's body nested in another call leaves the
 * child with both calls running on its one thread: a cancel of the outer
 * call in the child still interrupts its body, a pooled outer call is not
 * ended as cancelled there, and its completion in the child does not make
 * the parent's task fd readable.
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

struct fk {
	intr_token *outer_tok;	/* what the outer scope is bound to */
	atomic_int child;	/* the child's pid, once forked */
	bool in_child;		/* this copy is the child */
	int never[2];		/* nothing is ever written */
	int report[2];		/* the child's word on the outer call */
	int rel[2];		/* lets the parent's pooled body return */
};

/* The inner scope: fork, and return in both processes. */
static void *forks(intr_ctx *ctx, void *arg)
{
	struct fk *c = arg;
	pid_t pid;

	(void)ctx;
	/* The service threads the call started, settled first. */
	if (!b_others_asleep(WAIT_MS))
		tap_diag("forks: a thread still runs after %d ms", WAIT_MS);
	pid = fork();
	if (pid == 0)
		c->in_child = true;
	else
		atomic_store(&c->child, pid > 0 ? pid : -1);
	return NULL;
}

/* ---------------------------------------- a scope in a scope */

/* The outer scope.  In the child, once the inner scope has returned, it
 * cancels its own token and blocks in a plain read(): only the signal
 * (a re-send) ends it.  The parent's copy returns the child's status. */
static void *outer_scope(intr_ctx *ctx, void *arg)
{
	struct fk *c = arg;
	ssize_t r;
	char b;

	(void)ctx;
	if (intr_run_here(NULL, forks, c, NULL))
		return (void *)-3L;
	if (c->in_child) {
		if (intr_token_cancel(c->outer_tok))
			_exit(4);
		r = read(c->never[0], &b, 1);
		_exit(r < 0 && errno == EINTR && intr_cancelled(ctx) ? 0 : 1);
	}
	if (atomic_load(&c->child) <= 0)
		return (void *)-2L;
	return (void *)(long)b_child_within(atomic_load(&c->child), WAIT_MS);
}

static void scope_in_scope(void)
{
	struct fk c;
	void *res = (void *)-9L;
	int ret;

	memset(&c, 0, sizeof(c));
	atomic_init(&c.child, 0);
	if (pipe(c.never) || intr_token_new(&c.outer_tok, NULL)) {
		tap_ok(false, "scope in scope: set-up");
		return;
	}
	ret = intr_run_here(c.outer_tok, outer_scope, &c, &res);
	tap_ok(ret == 0 && (long)res == 0,
	       "scope in scope: in the child, a cancel of the outer scope "
	       "interrupts its body's read() (scope %d, child status %ld: %s)",
	       ret, (long)res, (long)res == -1 ? "still blocked after 5 s" :
	       (long)res == 0 ? "EINTR" : "other");
	intr_token_free(c.outer_tok);
	close(c.never[0]);
	close(c.never[1]);
}

/* ---------------------------------------- a scope in a pooled body */

static void *pooled(intr_ctx *ctx, void *arg)
{
	struct fk *c = arg;
	char b;

	if (intr_run_here(NULL, forks, c, NULL))
		return (void *)-3L;
	if (c->in_child) {
		/* The pooled call goes on here, uncancelled; its worker
		 * completes it in the child when the body returns. */
		b = intr_cancelled(ctx) || intr_reason(ctx) ? 'x' : 'k';
		if (write(c->report[1], &b, 1) != 1)
			_exit(3);
		return NULL;
	}
	while (read(c->rel[0], &b, 1) != 1)
		;
	return NULL;
}

static void scope_in_pool(void)
{
	struct fk c;
	intr_task *t;
	void *res = (void *)-1L;
	pid_t pid = 0;
	int fd, ret;
	char st = 0, b = 0;

	memset(&c, 0, sizeof(c));
	atomic_init(&c.child, 0);
	if (pipe(c.report) || pipe(c.rel) ||
	    intr_spawn(&t, NULL, pooled, &c)) {
		tap_ok(false, "scope in a pooled body: set-up");
		return;
	}
	fd = intr_task_fd(t);
	ret = b_readable_within(c.report[0], WAIT_MS) == 1 &&
	      read(c.report[0], &b, 1) == 1 &&
	      b_wait_atomic(&c.child, 1, WAIT_MS);
	pid = atomic_load(&c.child);
	tap_ok(ret && b == 'k',
	       "scope in a pooled body: in the child, the pooled call goes "
	       "on uncancelled (it says %c)", b ? b : '?');
	if (ret && pid > 0) {
		/* The child's worker, past the body: asleep once it has
		 * completed the call and waits for the next one. */
		uint64_t end = h_now_ns() + WAIT_MS * 1000000ull;

		while ((st = b_task_state(pid, pid)) != 'S' && st &&
		       h_now_ns() < end)
			b_sleep_ms(1);
	}
	tap_ok(st == 'S' && fd >= 0 && b_readable_within(fd, 0) == 0,
	       "scope in a pooled body: the child's completion of the call "
	       "leaves the parent's task fd unreadable (child state %c)",
	       st ? st : '?');
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (write(c.rel[1], "r", 1) != 1)
		tap_diag("write: %s", strerror(errno));
	ret = b_join_within(t, &res, WAIT_MS);
	tap_ok(ret == 0 && res == NULL, "scope in a pooled body: the "
	       "parent's call then completes (join %d)", ret);
	close(c.report[0]);
	close(c.report[1]);
	close(c.rel[0]);
	close(c.rel[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	scope_in_scope();
	scope_in_pool();
	return tap_done();
}
