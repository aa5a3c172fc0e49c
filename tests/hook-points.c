/* SPDX-License-Identifier: MIT */
/*
 * Description: with libinterruptible-libc linked, a context element's
 * hooks get libc's own functions, also when the call is cancelled while
 * they run: an install hook that writes a log line after the cancel
 * writes it, and so does the restore hook.
 */
#include "config.h"

#include <fcntl.h>

#include "body.h"
#include "tap.h"

#define BOUND_MS 5000		/* every wait of the test */

static int log_pipe[2];
static atomic_int in_install;	/* the install hook has started */
static atomic_int cancelled;	/* the test has cancelled the call */
static atomic_long install_ret, install_errno, restore_ret, restore_errno;

static void *capture(void *data)
{
	(void)data;
	return NULL;
}

static void *install(void *captured, void *data)
{
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;
	ssize_t r;

	(void)captured;
	(void)data;
	atomic_store(&in_install, 1);
	/* No system call while the cancel comes: spin. */
	while (!atomic_load(&cancelled) && h_now_ns() < end)
		;
	r = write(log_pipe[1], "install\n", 8);
	atomic_store(&install_ret, (long)r);
	atomic_store(&install_errno, r < 0 ? errno : 0);
	return NULL;
}

static void restore(void *saved, void *data)
{
	ssize_t r;

	(void)saved;
	(void)data;
	r = write(log_pipe[1], "restore\n", 8);
	atomic_store(&restore_ret, (long)r);
	atomic_store(&restore_errno, r < 0 ? errno : 0);
}

static void *nop_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	return NULL;
}

/* True once *v is set, waiting up to ms. */
static bool wait_flag(atomic_int *v, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (!atomic_load(v)) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

int main(void)
{
	struct intr_context_element el = {
		.capture = capture,
		.install = install,
		.restore = restore,
	};
	intr_token *tok;
	intr_task *t;
	int ret;

#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer defines libc's names itself, ahead of the static
	 * libinterruptible-libc. */
	tap_skip_all("ThreadSanitizer's interceptors take libc's names");
#endif
	if (pipe(log_pipe))
		tap_skip_all("no pipe");
	if (intr_context_add(&el) || intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, nop_body, NULL))
		tap_skip_all("set-up failed");
	tap_ok(wait_flag(&in_install, BOUND_MS), "the install hook runs");
	intr_token_cancel(tok);
	atomic_store(&cancelled, 1);
	ret = b_join_within(t, NULL, BOUND_MS);
	tap_ok(ret == -ECANCELED, "the call ends cancelled (%d)", ret);
	tap_ok(atomic_load(&install_ret) == 8,
	       "install hook: write() after the cancel is libc's (%ld, %s)",
	       atomic_load(&install_ret),
	       strerror((int)atomic_load(&install_errno)));
	tap_ok(atomic_load(&restore_ret) == 8,
	       "restore hook: write() is libc's (%ld, %s)",
	       atomic_load(&restore_ret),
	       strerror((int)atomic_load(&restore_errno)));
	if (ret == -ECANCELED)
		intr_token_free(tok);
	return tap_done();
}
