/* SPDX-License-Identifier: MIT */
/*
 * Description: calls that come in after the unload destructor has run
 * (another thread during dlclose or exit) are refused with -EAGAIN and
 * start no thread and no timer: the library's code may be unmapped.
 *
 * Linked statically so that it can run the destructor (intr__fini, a
 * hidden symbol) while the library stays mapped, and then call in.
 */
#include "config.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "tap.h"

void intr__fini(void);

static int fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

static void *body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static void *nothing(void *arg)
{
	return arg;
}

int main(void)
{
	intr_token *kept, *tok = NULL;
	intr_task *t = NULL;
	pthread_t th;
	int fd0, threads0, r;

	/* A runtime's helper thread (TSan's) starts with the first thread:
	 * count from after one. */
	if (!pthread_create(&th, NULL, nothing, NULL))
		pthread_join(th, NULL);
	threads0 = b_threads();
	fd0 = fds();
	/* Use it: a worker, both service threads and the timer. */
	r = intr_token_new(&kept, NULL);
	tap_ok(r == 0, "a token before the unload (%d)", r);
	r = intr_token_cancel_after(kept, 60000000000ull);
	tap_ok(r == 0, "a deadline before the unload (%d)", r);
	r = run_interruptible(NULL, body, NULL, NULL);
	tap_ok(r == 0, "a call before the unload (%d)", r);
	tap_diag("%d threads, %d fds in use", b_threads(), fds());

	intr__fini();
	tap_ok(b_threads() == threads0 && fds() == fd0,
	       "the destructor stopped every thread and closed the timer "
	       "(%d threads, %d fds; %d and %d before)", b_threads(), fds(),
	       threads0, fd0);

	r = intr_token_new(&tok, NULL);
	tap_ok(r == -EAGAIN, "intr_token_new after it: -EAGAIN (%d)", r);
	r = intr_token_cancel_after(kept, 1000000000u);
	tap_ok(r == -EAGAIN, "intr_token_cancel_after after it: -EAGAIN "
	       "(%d)", r);
	r = run_interruptible(NULL, body, NULL, NULL);
	tap_ok(r == -EAGAIN, "run_interruptible after it: -EAGAIN (%d)", r);
	r = intr_spawn(&t, NULL, body, NULL);
	tap_ok(r == -EAGAIN, "intr_spawn after it: -EAGAIN (%d)", r);
	tap_ok(b_threads() == threads0 && fds() == fd0,
	       "no thread and no timer started again (%d threads, %d fds)",
	       b_threads(), fds());
	r = intr_token_cancel(kept);
	tap_ok(r == 0, "intr_token_cancel still works, with no thread (%d)",
	       r);
	r = intr_token_free(kept);
	tap_ok(r == 0, "intr_token_free too (%d)", r);
	return tap_done();
}
