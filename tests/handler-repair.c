/* SPDX-License-Identifier: MIT */
/*
 * Description: an application that installs its own handler for the
 * interrupt signal while a call runs: the call's cancel still reaches the
 * body at once, not a re-send later.
 *
 * The re-send interval is made a minute long, so only the cancel's own
 * look at the handler, after its signal, can repair it in time: the body
 * waits in intr_read() on a pipe, and the application's handler has
 * SA_RESTART, so the signal that reaches it restarts the read, and only
 * a signal the library's own handler takes ends it.  Both hosts: a
 * pooled body, and a scope in place on a thread of the application's.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bound.h"
#include "host.h"
#include "tap.h"

#define WAIT_MS	5000u

static int pipefd[2];
static atomic_int theirs;
static atomic_int body_tid;

static void app_handler(int signo)
{
	(void)signo;
	atomic_fetch_add(&theirs, 1);
}

static void *reader(intr_ctx *ctx, void *arg)
{
	char c;
	ssize_t r;

	(void)arg;
	atomic_store(&body_tid, (int)syscall(SYS_gettid));
	/* intr_read: the repair's signal may come while the application's
	 * handler still runs, or after it before the read is made again;
	 * only the window turns that into the cancel.  A plain read would
	 * wait for the re-send, a minute away. */
	while (!intr_cancelled(ctx)) {
		r = intr_read(ctx, pipefd[0], &c, 1);
		if (r > 0)
			return (void *)1;
	}
	return NULL;
}

/* The body's thread asleep in read(): /proc says so. */
static bool body_in_read(void)
{
	char path[64], buf[256];
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	FILE *f;
	int tid;

	while (h_now_ns() < end) {
		tid = atomic_load(&body_tid);
		if (tid) {
			snprintf(path, sizeof(path),
				 "/proc/self/task/%d/syscall", tid);
			f = fopen(path, "r");
			if (f) {
				if (fgets(buf, sizeof(buf), f) &&
				    atoi(buf) == SYS_read) {
					fclose(f);
					return true;
				}
				fclose(f);
			}
		}
		b_sleep_ms(1);
	}
	return false;
}

/* One call on host h, whose handler the application replaces while its
 * body waits in read(). */
static void one(enum h_host h, int signo)
{
	const char *name = h_host_names[h];
	struct sigaction sa;
	intr_token *tok;
	intr_task *t;
	void *res = (void *)2;
	int r;

	host_set(h);
	atomic_store(&body_tid, 0);
	atomic_store(&theirs, 0);
	if (intr_token_new(&tok, NULL)) {
		tap_ok(false, "%s: intr_token_new", name);
		return;
	}
	r = host_spawn(&t, tok, reader, NULL);
	if (r) {
		tap_ok(false, "%s: spawn: %d", name, r);
		intr_token_free(tok);
		return;
	}
	tap_ok(body_in_read(), "%s: the body waits in read()", name);

	/* Now the application takes the signal over. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = app_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(signo, &sa, NULL);

	intr_token_cancel(tok);
	r = host_join_within(t, &res, WAIT_MS, pipefd[1]);
	tap_ok(r == -ECANCELED && !res, "%s: the cancel reaches the body "
	       "within %u ms, with the re-send a minute away: %d (%s)", name,
	       WAIT_MS, r, r == HOST_TIMEOUT ? "still in read()" : "returned");
	tap_diag("%s: the application's handler took %d of the library's "
		 "signals", name, atomic_load(&theirs));
	intr_token_free(tok);
}

int main(void)
{
	struct intr_config cfg;

	/* The kernel picks the handler as it delivers, and SA_RESTART has
	 * it make the read again: ThreadSanitizer runs every handler
	 * itself, later, from its own, and so does valgrind. */
#if defined(__SANITIZE_THREAD__)
	tap_skip_all("ThreadSanitizer runs the application's handler itself, later");
#endif
#if !INTR_TEST_WINDOW
	tap_skip_all("without the assembly window a signal taken just before "
		     "the read is made again waits for the re-send");
#endif
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind runs the application's handler itself");
	intr_config_default(&cfg);
	cfg.resend_us = 60000000;
	if (intr_configure(&cfg) || pipe(pipefd)) {
		tap_ok(false, "set-up");
		return tap_done();
	}
	one(H_POOL, cfg.signo);
	one(H_HERE, cfg.signo);
	return tap_done();
}
