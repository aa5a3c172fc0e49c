/* SPDX-License-Identifier: MIT */
/*
 * Description: a scope opened in a body whose window a handler left by
 * siglongjmp (its flags still up) runs its own body with the interrupt
 * signal open, even when its cancel's signal comes as the scope opens it.
 *
 * The outer scope blocks in intr_read(); a SIGALRM handler jumps out of
 * it.  The outer body then blocks the interrupt signal (SIGUSR1), raises
 * a SIGUSR1 of its own (foreign to the library, passed to the
 * application's handler, which cancels the inner scope's token), and
 * opens the inner scope.  The inner scope's start opens SIGUSR1: the
 * foreign signal is delivered there, its handler cancels, and the
 * cancel's signal follows at once.  The inner body must then have
 * SIGUSR1 open, and a plain read() it blocks in must be ended by a
 * re-send (EINTR), not by the test's watchdog byte.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS		5000

static sigjmp_buf env;
static intr_token *_Atomic cancel_on_usr1;
static atomic_int app_usr1;
static atomic_int main_tid;
static atomic_int inner_done;
static int never[2];		/* the outer's read */
static int data[2];		/* the inner's read; the watchdog's byte */

static void on_usr1(int signo)
{
	intr_token *t = atomic_load(&cancel_on_usr1);

	(void)signo;
	atomic_fetch_add(&app_usr1, 1);
	if (t)
		intr_token_cancel(t);
}

static void on_alrm(int signo)
{
	(void)signo;
	siglongjmp(env, 1);
}

/* Interrupts the main thread with SIGALRM once it sleeps in the outer
 * read. */
static void *alarm_thread(void *p)
{
	pthread_t *main_th = p;
	pid_t tid;

	if (!b_wait_atomic(&main_tid, 1, WAIT_MS))
		return NULL;
	tid = atomic_load(&main_tid);
	if (b_thread_sleeps(tid, WAIT_MS))
		pthread_kill(*main_th, SIGALRM);
	return NULL;
}

/* Ends the inner read with a byte if nothing else has within the bound. */
static void *watchdog(void *p)
{
	(void)p;
	if (!b_wait_atomic(&inner_done, 1, WAIT_MS))
		if (write(data[1], "w", 1) != 1)
			abort();
	return NULL;
}

struct inner_out {
	int usr1_blocked;
	ssize_t r;
	int e;
};

static void *inner(intr_ctx *ctx, void *p)
{
	struct inner_out *o = p;
	sigset_t m;
	char b;

	(void)ctx;
	pthread_sigmask(SIG_BLOCK, NULL, &m);
	o->usr1_blocked = sigismember(&m, SIGUSR1);
	errno = 0;
	o->r = read(data[0], &b, 1);
	o->e = errno;
	atomic_store(&inner_done, 1);
	return NULL;
}

struct outer_out {
	bool jumped;
	int inner_ret;
	struct inner_out in;
};

static void *outer(intr_ctx *ctx, void *p)
{
	struct outer_out *o = p;
	volatile bool first = true;
	pthread_t self = pthread_self(), th, wd;
	intr_token *tok;
	sigset_t s;
	char b;

	atomic_store(&main_tid, b_gettid());
	if (pthread_create(&th, NULL, alarm_thread, &self))
		return NULL;
	if (!sigsetjmp(env, 1)) {
		intr_read(ctx, never[0], &b, 1);
		first = false;
	}
	pthread_join(th, NULL);
	o->jumped = first;
	if (!first || intr_token_new(&tok, NULL))
		return NULL;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	atomic_store(&cancel_on_usr1, tok);
	pthread_kill(self, SIGUSR1);
	if (pthread_create(&wd, NULL, watchdog, NULL))
		return NULL;
	o->inner_ret = intr_run_here(tok, inner, &o->in, NULL);
	atomic_store(&inner_done, 1);
	pthread_join(wd, NULL);
	atomic_store(&cancel_on_usr1, NULL);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	intr_token_free(tok);
	return NULL;
}

int main(void)
{
	struct outer_out o = { .inner_ret = 1, .in = { .r = -2 } };
	struct sigaction sa;
	int ret;

	unsetenv("INTR_SIGNAL");
	if (pipe(never) || pipe(data))
		tap_skip_all("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_alrm;
	sigaction(SIGALRM, &sa, NULL);

	ret = intr_run_here(NULL, outer, &o, NULL);
	tap_ok(ret == 0 && o.jumped, "the SIGALRM handler jumped out of the "
	       "outer scope's intr_read (scope %d)", ret);
	tap_ok(atomic_load(&app_usr1) == 1, "the foreign SIGUSR1 reached "
	       "the application's handler (%d)", atomic_load(&app_usr1));
	tap_ok(o.in.usr1_blocked == 0, "the inner body runs with the "
	       "interrupt signal open (blocked: %d)", o.in.usr1_blocked);
	tap_ok(o.inner_ret == -ECANCELED && o.in.r < 0 && o.in.e == EINTR,
	       "a re-send ends the inner body's plain read() (scope %d, "
	       "read %zd, %s)", o.inner_ret, o.in.r,
	       o.in.r == 1 ? "the watchdog's byte after 5 s" :
	       strerror(o.in.e));
	return tap_done();
}
