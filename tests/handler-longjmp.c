/* SPDX-License-Identifier: MIT */
/*
 * Description: a signal handler that leaves a wrapper's window by
 * siglongjmp (the alarm time-out idiom) leaves nothing behind on the
 * worker: the next call it runs is cancelled as any other.
 *
 * One worker (max_workers 1), so both calls run on it.  The first body
 * blocks in intr_sleep() and a SIGALRM handler jumps out of it.  The
 * second body is cancelled while it computes, makes one system call (the
 * signal is delivered on its way back, outside any window), then blocks in
 * a read the library does not wrap: only a re-send can reach it.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>

#include "body.h"
#include "tap.h"

#define BOUND_MS 5000		/* every wait of the test */

static sigjmp_buf env;
static atomic_int tid;
static atomic_int cancelled;
static int data_pipe[2];

/* True once *v is set, waiting up to ms. */
static bool wait_set(atomic_int *v, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (!atomic_load(v)) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

static void on_alrm(int sig)
{
	(void)sig;
	siglongjmp(env, 1);
}

static void *timed_out_body(intr_ctx *ctx, void *arg)
{
	(void)arg;
	if (sigsetjmp(env, 1))
		return (void *)1L;	/* "timed out" */
	atomic_store(&tid, b_gettid());
	intr_sleep(ctx, 60000000000ull);
	return NULL;
}

static void *victim_body(intr_ctx *ctx, void *arg)
{
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;
	char c;
	long r;

	(void)ctx;
	(void)arg;
	atomic_store(&tid, b_gettid());
	while (!atomic_load(&cancelled) && h_now_ns() < end)
		;
	/* The cancel's signal is queued: it is delivered on the way back
	 * from this system call, outside any window. */
	syscall(SYS_getppid);
	r = syscall(SYS_read, data_pipe[0], &c, 1);
	return (void *)(r < 0 ? (long)-errno : r);
}

int main(void)
{
	struct intr_config cfg;
	struct sigaction sa;
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int ret;

#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer runs a handler only from its own interceptors,
	 * never over a wrapper's raw system call. */
	tap_skip_all("ThreadSanitizer defers signal handlers");
#endif
	if (pipe(data_pipe))
		tap_skip_all("no pipe");
	intr_config_default(&cfg);
	cfg.max_workers = 1;
	if (intr_configure(&cfg))
		tap_skip_all("intr_configure refused");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sigaction(SIGALRM, &sa, NULL);

	if (intr_spawn(&t, NULL, timed_out_body, NULL))
		tap_skip_all("intr_spawn failed");
	if (!tap_ok(b_wait_blocked(&tid, BOUND_MS),
		    "first body blocked in intr_sleep"))
		return tap_done();
	syscall(SYS_tgkill, getpid(), atomic_load(&tid), SIGALRM);
	ret = b_join_within(t, &res, BOUND_MS);
	tap_ok(ret == 0 && res == (void *)1L,
	       "the handler jumped out of the window (%d, %p)", ret, res);
	if (ret == -ETIME)
		return tap_done();

	atomic_store(&tid, 0);
	intr_token_new(&tok, NULL);
	intr_spawn(&t, tok, victim_body, NULL);
	if (!tap_ok(wait_set(&tid, BOUND_MS),
		    "second body runs on the worker"))
		return tap_done();
	intr_token_cancel(tok);
	atomic_store(&cancelled, 1);
	res = NULL;
	ret = b_join_within(t, &res, BOUND_MS);
	tap_ok(ret == -ECANCELED,
	       "the next call on the worker ends cancelled (%d)", ret);
	tap_ok((long)res == -EINTR,
	       "a re-send stops its unwrapped read (%ld)", (long)res);
	if (ret == -ECANCELED)
		intr_token_free(tok);
	return tap_done();
}
