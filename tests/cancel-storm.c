/* SPDX-License-Identifier: MIT */
/*
 * Description: a signal handler cancels tokens and tasks at a high rate on
 * the very thread that spawns, cancels, joins, makes and frees them, or
 * runs them in place (intr_run_here): intr_token_cancel() and
 * intr_task_cancel() are async-signal-safe, so nothing may ever wait there
 * for a lock that the interrupted thread holds.
 *
 * Another thread sends SIGUSR2 (blocked everywhere but on the main thread)
 * to the main thread as fast as it can; the handler cancels the token and
 * the task of the main thread's current call.  A watchdog thread fails the
 * test, with the iteration it was stuck at, if the main thread makes no
 * progress for WATCH_MS: a handler that waits on a lock its own thread
 * holds waits for ever.
 *
 * In the fault build the hook first holds the tree lock open on the main
 * thread (a cancel of another token), and the other thread sends the
 * signal just then: deterministic, where the storm is a matter of luck.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define ITERATIONS	4000
#define WATCH_MS	10000u

static _Atomic(intr_token *) cur_tok;
static _Atomic(intr_task *) cur_task;
static atomic_int handled, progress, stop;
static pthread_t main_th;

static void on_usr2(int signo)
{
	intr_token *tok = atomic_load(&cur_tok);
	intr_task *t = atomic_load(&cur_task);
	int e = errno;

	(void)signo;
	if (tok)
		intr_token_cancel(tok);
	if (t)
		intr_task_cancel(t);
	atomic_fetch_add(&handled, 1);
	errno = e;
}

static void *sender(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_kill(main_th, SIGUSR2);
		sched_yield();
	}
	return NULL;
}

/* Fails the test, and ends the program, if the main thread is stuck. */
static void *watchdog(void *arg)
{
	uint64_t last_change = h_now_ns();
	int last = -1, now;

	(void)arg;
	while (!atomic_load(&stop)) {
		now = atomic_load(&progress);
		if (now != last) {
			last = now;
			last_change = h_now_ns();
		} else if (h_now_ns() - last_change >
			   (uint64_t)WATCH_MS * 1000000u) {
			tap_ok(false, "the main thread made no progress for "
			       "%u ms at iteration %d (%d signals handled): a "
			       "cancelling handler waits on a lock its own "
			       "thread holds", WATCH_MS, now,
			       atomic_load(&handled));
			fflush(stdout);
			_exit(1);
		}
		b_sleep_ms(10);
	}
	return NULL;
}

#ifdef INTR_FAULT_INJECTION
static atomic_int poked;

/* Once the main thread holds the tree lock (held open by the hook), send
 * it one signal. */
static void *poker(void *arg)
{
	uint64_t end = h_now_ns() + (uint64_t)WATCH_MS * 1000000u;

	(void)arg;
	while (!intr__fault_delaying(INTR_DELAY_TREE_LOCKED)) {
		if (h_now_ns() > end)
			return NULL;
		sched_yield();
	}
	pthread_kill(main_th, SIGUSR2);
	atomic_store(&poked, 1);
	return NULL;
}

/* The main thread cancels one token while the handler will cancel
 * another: with the lock held 200 ms, the signal comes inside. */
static bool held_lock(void)
{
	intr_token *mine = NULL, *theirs = NULL;
	int before = atomic_load(&handled);
	pthread_t th;
	bool ok;

	if (intr_token_new(&mine, NULL) || intr_token_new(&theirs, NULL))
		return false;
	atomic_store(&cur_tok, theirs);
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 200);
	if (pthread_create(&th, NULL, poker, NULL)) {
		intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
		return false;
	}
	intr_token_cancel(mine);
	intr__fault_delay_arm(INTR_DELAY_TREE_LOCKED, 0);
	pthread_join(th, NULL);
	atomic_store(&cur_tok, NULL);
	atomic_fetch_add(&progress, 1);
	ok = atomic_load(&poked) && atomic_load(&handled) > before &&
	     intr_token_reason(theirs) == -ECANCELED;
	intr_token_free(mine);
	intr_token_free(theirs);
	return ok;
}
#endif

static void *body(intr_ctx *ctx, void *arg)
{
	(void)arg;
	intr_sleep(ctx, 100000);
	return NULL;
}

/* In place, the body cancels its own scope every other round: the
 * cancel's signal goes to this very thread. */
static void *here_body(intr_ctx *ctx, void *arg)
{
	if (arg)
		intr_token_cancel(atomic_load(&cur_tok));
	intr_sleep(ctx, 100000);
	return NULL;
}

/* n calls on this thread under the storm: spawned and joined from it, or
 * run on it in place. */
static void storm(bool here, long n)
{
	long i, cancelled = 0, finished = 0, bad = 0;
	int before = atomic_load(&handled);
	int r;

	for (i = 0; i < n; i++) {
		intr_token *tok;
		intr_task *t;

		r = intr_token_new(&tok, NULL);
		if (r) {
			bad++;
			break;
		}
		atomic_store(&cur_tok, tok);
		if (here) {
			r = intr_run_here(tok, here_body,
					  (i % 2) ? &cur_tok : NULL, NULL);
		} else if (!(r = intr_spawn(&t, tok, body, NULL))) {
			atomic_store(&cur_task, t);
			if (i % 2)
				intr_token_cancel(tok);
			atomic_store(&cur_task, NULL);
			r = intr_join(t, NULL);
		}
		/* The call's result (or the spawn's error). */
		if (r == -ECANCELED)
			cancelled++;
		else if (!r)
			finished++;
		else
			bad++;
		atomic_store(&cur_tok, NULL);
		if (intr_token_free(tok))
			bad++;
		atomic_fetch_add(&progress, 1);
	}
	tap_ok(i == n && !bad, "%s: %ld calls under %d cancelling signal "
	       "handlers on the same thread: %ld cancelled, %ld not, %ld "
	       "errors", here ? "in place (intr_run_here)" :
	       "spawn, cancel, join", i, atomic_load(&handled) - before,
	       cancelled, finished, bad);
	tap_ok(atomic_load(&handled) > before, "%s: the handler ran (%d "
	       "times)", here ? "in place" : "pooled",
	       atomic_load(&handled) - before);
}

int main(void)
{
	pthread_t snd, dog;
	struct sigaction sa;
	sigset_t usr2, old;
	long n = b_scale(ITERATIONS);

	main_th = pthread_self();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);

	/* Only the main thread takes SIGUSR2: the helpers start with it
	 * blocked (the library's threads block every signal). */
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &usr2, &old);
	if (pthread_create(&dog, NULL, watchdog, NULL)) {
		tap_ok(false, "pthread_create");
		return tap_done();
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
#ifdef INTR_FAULT_INJECTION
	tap_ok(held_lock(), "a handler that cancels, sent while its thread "
	       "holds the tree lock (held open by the hook), runs once the "
	       "lock is let go");
#else
	tap_skip("the tree lock held open: needs the fault hook's delay "
		 "(make check-fault)");
#endif
	pthread_sigmask(SIG_BLOCK, &usr2, &old);
	if (pthread_create(&snd, NULL, sender, NULL)) {
		tap_ok(false, "pthread_create");
		return tap_done();
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	storm(false, n);
	storm(true, n);
	atomic_store(&stop, 1);
	pthread_join(snd, NULL);
	pthread_join(dog, NULL);
	return tap_done();
}
