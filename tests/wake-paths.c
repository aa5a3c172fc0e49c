/* SPDX-License-Identifier: MIT */
/*
 * Description: intr_sleep's cancel needs no signal: a cancel that finds
 * the body asleep ends the sleep in the kernel and sends the worker none.
 *
 * The number of interrupt signals sent is the fault injection hook's count
 * of its send site (make check-fault builds the hook; the program is
 * linked statically, as the count is hidden).  Without the hook every case
 * still checks what intr_sleep returns, bounded, and the counts are
 * skipped with one line.  Re-sends are 10 s away, out of the picture.
 *
 *   asleep    the body seen asleep, then cancelled: the reason, no send
 *   deadline  a token deadline fires while it sleeps: -ETIMEDOUT, no send
 *   sigprof   a SIGPROF handled over the sleep, then the cancel: no send
 *   running   cancelled while the body runs outside any wait, then it
 *             sleeps: the reason at once, one send (the signal's way)
 *   held      the body blocked the interrupt signal itself: its cancel is
 *             held, the sleep goes on to its end (0), one send
 *   env       INTR_WAKE=signal (a child, set before its first call):
 *             asleep, then cancelled: the reason, one send
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define BOUND_MS	10000u
#define LONG_NS		30000000000ull	/* 30 s: far past BOUND_MS */
#define HELD_NS		200000000ull	/* a held sleep: 200 ms */
#define RESEND_US	10000000u

enum kind { K_ASLEEP, K_DEADLINE, K_SIGPROF, K_RUNNING, K_HELD, K_NR };

static const char *const kind_name[K_NR] = {
	"asleep", "deadline", "sigprof", "running", "held",
};

struct sleeper {
	enum kind kind;
	int signo;
	atomic_int tid;
	atomic_int go;		/* running: the cancel is in */
	int ret;
	uint64_t slept_ns;
};

static atomic_int prof_seen;

static void on_prof(int sig)
{
	(void)sig;
	atomic_fetch_add(&prof_seen, 1);
}

/* Interrupt signals sent so far, or -1 without the hook. */
static long sends(void)
{
#ifdef INTR_FAULT_INJECTION
	return (long)intr__fault_events(INTR_SITE_SIGNAL_SEND);
#else
	return -1;
#endif
}

static void *sleeper_body(intr_ctx *ctx, void *arg)
{
	struct sleeper *s = arg;
	uint64_t t0;
	sigset_t set;

	sigemptyset(&set);
	if (s->kind == K_HELD) {
		sigaddset(&set, s->signo);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	} else if (s->kind == K_SIGPROF) {
		sigaddset(&set, SIGPROF);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	atomic_store(&s->tid, (int)b_gettid());
	if (s->kind == K_RUNNING)
		b_wait_atomic(&s->go, 1, BOUND_MS);
	t0 = h_now_ns();
	s->ret = intr_sleep(ctx, s->kind == K_HELD ? HELD_NS : LONG_NS);
	s->slept_ns = h_now_ns() - t0;
	if (s->kind == K_HELD)
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return s;
}

/* Run one case; false with a line of diagnosis if it went wrong. */
static bool run_case(enum kind k, int signo, long want_sends)
{
	const char *name = kind_name[k];
	int want = k == K_DEADLINE ? -ETIMEDOUT : k == K_HELD ? 0 : -ECANCELED;
	intr_token *tok = NULL;
	intr_task *t = NULL;
	struct sleeper s;
	long before, sent;
	void *res = NULL;
	int r, prof;
	bool ok;

	memset(&s, 0, sizeof(s));
	s.kind = k;
	s.signo = signo;
	r = intr_token_new(&tok, NULL);
	if (!r)
		r = intr_spawn(&t, tok, sleeper_body, &s);
	if (r) {
		tap_diag("%s: intr_token_new or intr_spawn: %d", name, r);
		return false;
	}
	ok = b_wait_atomic(&s.tid, 1, BOUND_MS);
	if (ok && k != K_RUNNING)
		ok = b_thread_sleeps(atomic_load(&s.tid), BOUND_MS);
	if (ok && k == K_SIGPROF) {
		prof = atomic_load(&prof_seen);
		ok = !syscall(SYS_tgkill, getpid(), atomic_load(&s.tid),
			      SIGPROF) &&
		     b_wait_atomic(&prof_seen, prof + 1, BOUND_MS) &&
		     b_thread_sleeps(atomic_load(&s.tid), BOUND_MS);
	}
	if (!ok) {
		tap_diag("%s: the body never slept", name);
		return false;
	}
	before = sends();
	if (k == K_DEADLINE)
		r = intr_token_cancel_after(tok, 1000000);
	else
		r = intr_token_cancel(tok);
	if (k == K_RUNNING)
		atomic_store(&s.go, 1);
	if (r) {
		tap_diag("%s: the cancel: %d", name, r);
		return false;
	}
	r = b_join_within(t, &res, BOUND_MS);
	if (r == B_TIMEOUT) {
		tap_diag("%s: the call did not end within %u ms (a lost "
			 "cancel)", name, BOUND_MS);
		return false;
	}
	sent = before < 0 ? -1 : sends() - before;
	intr_token_free(tok);
	if (r != (k == K_DEADLINE ? -ETIMEDOUT : -ECANCELED) || res != &s) {
		tap_diag("%s: join %d", name, r);
		return false;
	}
	if (s.ret != want || (k == K_HELD && s.slept_ns < HELD_NS)) {
		tap_diag("%s: intr_sleep returned %d after %" PRIu64 " us, "
			 "not %d", name, s.ret, s.slept_ns / 1000, want);
		return false;
	}
	if (sent >= 0 && sent != want_sends) {
		tap_diag("%s: %ld interrupt signals sent, not %ld", name, sent,
			 want_sends);
		return false;
	}
	return true;
}

static int configure(void)
{
	struct intr_config cfg;
	int r;

	intr_config_default(&cfg);
	cfg.resend_us = RESEND_US;
	r = intr_configure(&cfg);
	return r ? r : cfg.signo;
}

int main(void)
{
	struct sigaction sa;
	sigset_t set;
	int signo, st;
	pid_t pid;
	enum kind k;

	/* The escape hatch, in a child: the environment is read at the
	 * first use of the library, which is still to come. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		setenv("INTR_WAKE", "signal", 1);
		signo = configure();
		_exit(signo > 0 && run_case(K_ASLEEP, signo, 1) ? 0 : 1);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_prof;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPROF, &sa, NULL);
	/* Only the sleeper that asks for it takes SIGPROF. */
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signo = configure();
	if (signo <= 0) {
		tap_ok(false, "intr_configure: %d", signo);
		return tap_done();
	}
	if (sends() < 0)
		tap_diag("no fault injection hook: the signals sent are not "
			 "counted (make check-fault counts them)");
	for (k = 0; k < K_NR; k++)
		tap_ok(run_case(k, signo, k == K_RUNNING || k == K_HELD),
		       "intr_sleep, cancel %s: %s", kind_name[k],
		       k == K_RUNNING || k == K_HELD ? "one signal" :
		       "no signal");
	st = pid > 0 ? b_child_within(pid, 2 * BOUND_MS) : -3;
	tap_ok(st == 0, "INTR_WAKE=signal: intr_sleep cancelled asleep with "
	       "one signal (child status %d)", st);
	return tap_done();
}
