/* SPDX-License-Identifier: MIT */
/*
 * Description: an application's signal handler that runs on a worker
 * during a body, with libinterruptible-libc linked, neither loses nor
 * takes over the body's cancel.
 *
 *   1. The body blocks in read(); a SIGALRM handler runs over it, the
 *      call is cancelled while the handler runs, and the handler then
 *      writes its self-pipe, retrying EINTR.  The handler runs over the
 *      window of the body's read(): its write() is libc's and writes its
 *      byte, and the body's read() still sees the cancel.
 *   2. The call is cancelled while the body computes; the handler then
 *      writes its self-pipe (a cancellation point here: the handler runs
 *      over the body proper), and the body blocks in a system call the
 *      library does not wrap.  Whatever the handler's write() reported,
 *      the re-sends go on until the body itself returns.
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>

#include "body.h"
#include "tap.h"

#define BOUND_MS 5000		/* every wait of the test */

static int data_pipe[2], self_pipe[2];
static atomic_int tid;		/* the worker, once its body runs */
static atomic_int in_handler;	/* the handler has started */
static atomic_int cancelled;	/* the test has cancelled the call */
static atomic_int handler_done;
static atomic_long handler_wrote, handler_errno;

/* Spin until *v is set, at most BOUND_MS: a handler may not sleep on what
 * it waits for (its sleep would be a point of the body's). */
static void spin_until(atomic_int *v)
{
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

	while (!atomic_load(v) && h_now_ns() < end)
		;
}

/* True once *v is set, waiting up to ms (not in a handler). */
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
	int e = errno;
	ssize_t r;

	(void)sig;
	atomic_store(&in_handler, 1);
	spin_until(&cancelled);
	do
		r = write(self_pipe[1], "x", 1);
	while (r < 0 && errno == EINTR);
	atomic_store(&handler_wrote, (long)r);
	atomic_store(&handler_errno, r < 0 ? errno : 0);
	atomic_store(&handler_done, 1);
	errno = e;
}

static void reset(void)
{
	char b;

	atomic_store(&tid, 0);
	atomic_store(&in_handler, 0);
	atomic_store(&cancelled, 0);
	atomic_store(&handler_done, 0);
	atomic_store(&handler_wrote, -2);
	atomic_store(&handler_errno, 0);
	while (read(self_pipe[0], &b, 1) == 1)
		;
}

/* Blocks in the interposed read(). */
static void *reading_body(intr_ctx *ctx, void *arg)
{
	char c;
	ssize_t r;

	(void)ctx;
	(void)arg;
	atomic_store(&tid, b_gettid());
	r = read(data_pipe[0], &c, 1);
	return (void *)(r < 0 ? (long)-errno : (long)r);
}

static void handler_over_read(void)
{
	intr_token *tok;
	intr_task *task;
	void *res = NULL;
	int ret;
	char b;

	reset();
	intr_token_new(&tok, NULL);
	intr_spawn(&task, tok, reading_body, NULL);
	if (!tap_ok(b_wait_blocked(&tid, BOUND_MS), "over read: body blocked"))
		return;
	syscall(SYS_tgkill, getpid(), atomic_load(&tid), SIGALRM);
	tap_ok(wait_set(&in_handler, BOUND_MS),
	       "over read: handler runs");
	intr_token_cancel(tok);
	atomic_store(&cancelled, 1);
	ret = b_join_within(task, &res, BOUND_MS);
	tap_ok(ret == -ECANCELED, "over read: the call ends cancelled (%d)",
	       ret);
	tap_ok((long)res == -EINTR || (long)res == -ECANCELED,
	       "over read: the body's read() is stopped (%ld)", (long)res);
	tap_ok(atomic_load(&handler_wrote) == 1,
	       "over read: the handler's write() is libc's (%ld, errno %ld)",
	       atomic_load(&handler_wrote), atomic_load(&handler_errno));
	tap_ok(read(self_pipe[0], &b, 1) == 1, "over read: its byte is there");
	if (ret == -ECANCELED)	/* else the worker is stuck: leave it */
		intr_token_free(tok);
}

/* Computes until the handler is done, then blocks where the library has
 * no window: only a re-send can reach it. */
static void *computing_body(intr_ctx *ctx, void *arg)
{
	char c;
	long r;

	(void)ctx;
	(void)arg;
	atomic_store(&tid, b_gettid());
	spin_until(&handler_done);
	r = syscall(SYS_read, data_pipe[0], &c, 1);
	return (void *)(r < 0 ? (long)-errno : r);
}

static void handler_over_body(void)
{
	intr_token *tok;
	intr_task *task;
	void *res = NULL;
	int ret;

	reset();
	atomic_store(&cancelled, 1);	/* the handler need not wait */
	intr_token_new(&tok, NULL);
	intr_spawn(&task, tok, computing_body, NULL);
	if (!tap_ok(wait_set(&tid, BOUND_MS), "over body: body runs"))
		return;
	intr_token_cancel(tok);
	syscall(SYS_tgkill, getpid(), atomic_load(&tid), SIGALRM);
	ret = b_join_within(task, &res, BOUND_MS);
	tap_diag("handler's write(): %ld, errno %ld",
		 atomic_load(&handler_wrote), atomic_load(&handler_errno));
	tap_ok(ret == -ECANCELED, "over body: the call ends cancelled (%d)",
	       ret);
	tap_ok((long)res == -EINTR,
	       "over body: a re-send stops the unwrapped read (%ld)",
	       (long)res);
	if (ret == -ECANCELED)
		intr_token_free(tok);
}

int main(void)
{
	struct sigaction sa;

#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer defines libc's names itself, ahead of the static
	 * libinterruptible-libc. */
	tap_skip_all("ThreadSanitizer's interceptors take libc's names");
#endif
	if (pipe(data_pipe) || pipe(self_pipe) ||
	    fcntl(self_pipe[0], F_SETFL, O_NONBLOCK))
		tap_skip_all("no pipes");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);

	handler_over_read();
	handler_over_body();
	return tap_done();
}
