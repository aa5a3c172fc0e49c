/* SPDX-License-Identifier: MIT */
/*
 * Description: the unload destructor leaves everything in place while a
 * scope runs on a thread of the application (no pool worker is busy
 * then): the interrupt signal keeps the library's handler, and a cancel
 * still ends the scope.  Once the scope has returned, the destructor goes
 * ahead, and a scope that comes in later is refused with -EAGAIN.
 *
 * Linked statically so that it can run the destructor (intr__fini, a
 * hidden symbol) while the library stays mapped.  The case runs in a
 * child: on failure the interrupt signal, back to its default, ends it.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS		5000

void intr__fini(void);

enum {
	F_SETUP = 1,		/* could not start */
	F_HANDLER = 2,		/* the handler was taken away */
	F_CANCEL = 4,		/* intr_token_cancel refused */
	F_SCOPE = 8,		/* the scope did not end -ECANCELED */
	F_LATER = 16,		/* a scope after the unload was not refused */
};

struct scope {
	intr_token *tok;
	int fds[2];
	atomic_int tid;
	atomic_int ret;		/* the scope's return, once it has */
	atomic_int done;
};

static void *read_body(intr_ctx *ctx, void *arg)
{
	struct scope *s = arg;
	char b;

	atomic_store(&s->tid, b_gettid());
	return (void *)(long)intr_read(ctx, s->fds[0], &b, 1);
}

static void *scope_thread(void *arg)
{
	struct scope *s = arg;
	void *res = NULL;
	int r;

	r = intr_run_here(s->tok, read_body, s, &res);
	atomic_store(&s->ret, r == -ECANCELED && (long)res == -ECANCELED ?
			      0 : (r ? r : -1000));
	atomic_store(&s->done, 1);
	return NULL;
}

static void *empty(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static int child(void)
{
	struct scope s;
	struct sigaction sa;
	pthread_t th;
	int flags = 0;
	pid_t tid;

	memset(&s, 0, sizeof(s));
	atomic_init(&s.tid, 0);
	atomic_init(&s.done, 0);
	if (pipe(s.fds) || intr_token_new(&s.tok, NULL) ||
	    pthread_create(&th, NULL, scope_thread, &s))
		return F_SETUP;
	if (!b_wait_atomic(&s.tid, 1, WAIT_MS))
		return F_SETUP;
	tid = atomic_load(&s.tid);
	if (!b_thread_sleeps(tid, WAIT_MS))
		return F_SETUP;

	/* The scope is blocked in its read: no worker is busy. */
	intr__fini();
	if (sigaction(SIGUSR1, NULL, &sa) || !(sa.sa_flags & SA_SIGINFO))
		flags |= F_HANDLER;
	if (intr_token_cancel(s.tok))
		flags |= F_CANCEL;
	if (!b_wait_atomic(&s.done, 1, WAIT_MS) || atomic_load(&s.ret))
		flags |= F_SCOPE;
	else
		pthread_join(th, NULL);

	/* Nothing runs now: the destructor goes ahead. */
	intr__fini();
	if (intr_run_here(NULL, empty, NULL, NULL) != -EAGAIN)
		flags |= F_LATER;
	return flags;
}

int main(void)
{
	pid_t pid;
	int st;

	/* The library's own signal, whatever the environment says. */
	unsetenv("INTR_SIGNAL");
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(child());
	st = pid > 0 ? b_child_within(pid, 4 * WAIT_MS) : -2;
	if (st < 0 || st == F_SETUP || st > 255)
		tap_diag("the child: %s %d", st > 255 ? "killed by signal" :
			 "status", st > 255 ? st - 256 : st);
	tap_ok(st >= 0 && st < 256 && !(st & (F_SETUP | F_HANDLER)),
	       "the destructor leaves the interrupt signal's handler while a "
	       "scope runs (child status %d)", st);
	tap_ok(st >= 0 && st < 256 && !(st & (F_SETUP | F_CANCEL | F_SCOPE)),
	       "a cancel after it still ends the scope with -ECANCELED");
	tap_ok(st >= 0 && st < 256 && !(st & (F_SETUP | F_LATER)),
	       "once the scope has returned the destructor goes ahead, and "
	       "a later scope is refused with -EAGAIN");
	return tap_done();
}
