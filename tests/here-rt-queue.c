/* SPDX-License-Identifier: MIT */
/*
 * Description: a scope whose interrupt signal is a real-time one, with
 * several instances queued for it when it ends, returns with none left:
 * every instance is delivered (and ignored) before intr_run_here returns,
 * whether the caller had the signal open or blocked, and whether the end
 * step flushes (a finalizer follows the body) or the token's unlink does
 * (nothing follows it).
 *
 * The body blocks the signal, cancels its own token and waits, bounded,
 * until re-sends 100 us apart have queued at least three instances (the
 * process's queued signals, SigQ in /proc; a round that sees fewer is
 * skipped with a line).  After the scope the test takes what is left with
 * a zero-timeout sigtimedwait: nothing may be there, and the
 * application's own handler for the signal must never have run.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS		5000u
#define ROUNDS		8
#define QUEUED		3

static int sig;
static atomic_int app_runs;

static void app_handler(int signo)
{
	(void)signo;
	atomic_fetch_add(&app_runs, 1);
}

/* The signals queued to this process and its threads, by SigQ's count
 * (its user's, in fact: a lower bound is all it is used for). */
static long queued(void)
{
	char line[256];
	long q = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigQ:", 5))
			q = atol(line + 5);
	fclose(f);
	return q;
}

static void fin(void *arg)
{
	(void)arg;
}

struct round {
	intr_token *tok;
	bool fin;
	long base;		/* SigQ before the scope */
	long got;		/* SigQ over base, the body's last look */
};

static void *body(intr_ctx *ctx, void *p)
{
	struct round *r = p;
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	sigset_t s;

	if (r->fin && intr_defer(ctx, fin, NULL))
		return (void *)1;
	/* Held off here: the re-sends queue up. */
	sigemptyset(&s);
	sigaddset(&s, sig);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	intr_token_cancel(r->tok);
	do {
		r->got = queued() - r->base;
		if (r->got >= QUEUED)
			break;
		b_sleep_ms(1);
	} while (h_now_ns() < end);
	return NULL;
}

int main(void)
{
	struct intr_config cfg;
	struct timespec zero = { 0, 0 };
	int i, ret, left, ran = 0;
	sigset_t s;

	/* valgrind takes every signal from the kernel as it comes: none
	 * stays queued there. */
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind queues every signal itself");
	sig = SIGRTMIN + 3;
	signal(sig, app_handler);
	intr_config_default(&cfg);
	cfg.signo = sig;
	cfg.resend_us = 100;
	if (intr_configure(&cfg)) {
		tap_ok(false, "intr_configure");
		return tap_done();
	}
	for (i = 0; i < ROUNDS; i++) {
		struct round r = { .fin = i & 1 };
		bool blocked = i & 2;
		void *res = NULL;

		sigemptyset(&s);
		sigaddset(&s, sig);
		pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
		if (intr_token_new(&r.tok, NULL)) {
			tap_ok(false, "round %d: intr_token_new", i);
			continue;
		}
		r.base = queued();
		ret = intr_run_here(r.tok, body, &r, &res);
		/* Whatever is left of ours, taken here: none may be. */
		for (left = 0; sigtimedwait(&s, NULL, &zero) == sig; left++)
			;
		if (r.got < 2) {
			tap_skip("round %d: only %ld instances seen queued", i,
				 r.got);
		} else {
			ran++;
			tap_ok(ret == -ECANCELED && !res && !left,
			       "round %d (%s, caller %s): %ld queued, %d left "
			       "after the scope (scope %d)", i,
			       r.fin ? "a finalizer" : "nothing after the body",
			       blocked ? "blocked it" : "had it open", r.got,
			       left, ret);
		}
		pthread_sigmask(SIG_UNBLOCK, &s, NULL);
		intr_token_free(r.tok);
	}
	tap_ok(!atomic_load(&app_runs), "the application's handler never "
	       "ran (%d times)", atomic_load(&app_runs));
	tap_ok(ran > 0, "%d of %d rounds had several instances queued", ran,
	       ROUNDS);
	return tap_done();
}
