/* SPDX-License-Identifier: MIT */
/*
 * Description: the service thread repairs the interrupt signal's handler
 * between a cancel's send, which went to the application's handler, and
 * the cancel's own look at the handler: the cancel still reaches the
 * body at once, not a re-send later.
 *
 * The application installs its own handler (SA_RESTART) before the call;
 * the body waits in intr_read() on a pipe, so only a signal the
 * library's handler takes ends it, and the re-send is a minute away.  The
 * library's sigaction is wrapped (static link, --wrap): the cancel's look
 * at the handler, on the cancelling thread, waits until the application's
 * handler has taken the cancel's signal and the service thread, woken by
 * a deadline of another token, waits for the tree lock the cancel holds.
 * Whatever that pass does to the handler before the lock, the look sees.
 * Both hosts: a pooled body, and a scope in place.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bound.h"
#include "host.h"
#include "tap.h"

#define WAIT_MS	5000u

int __real_sigaction(int signo, const struct sigaction *act,
		     struct sigaction *old);
int __wrap_sigaction(int signo, const struct sigaction *act,
		     struct sigaction *old);

static int pipefd[2];
static int signo;
static atomic_int theirs;
static atomic_int body_tid;
static pid_t service_tid;
/* The cancelling thread, inside intr_token_cancel. */
static _Thread_local bool in_cancel;
/* What the wrapped look saw, for the report. */
static bool fresh, took, waited;

static void app_handler(int s)
{
	(void)s;
	atomic_fetch_add(&theirs, 1);
}

/* The system call thread tid waits in (/proc), with its first argument;
 * -1 if it cannot be read. */
static long thread_syscall(pid_t tid, long *arg0)
{
	char path[64], buf[256];
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) &&
	    sscanf(buf, "%ld %lx", &nr, (unsigned long *)arg0) < 2)
		nr = -1;
	fclose(f);
	return nr;
}

/* The service thread: asleep in read() on the library's timerfd. */
static pid_t find_service(void)
{
	char path[64], link[64];
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	struct dirent *d;
	long arg0, timer = -1;
	DIR *dir;
	ssize_t n;
	int fd;

	for (fd = 0; fd < 1024 && timer < 0; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			if (strstr(link, "timerfd"))
				timer = fd;
		}
	}
	if (timer < 0)
		return 0;
	while (h_now_ns() < end) {
		dir = opendir("/proc/self/task");
		if (!dir)
			return 0;
		while ((d = readdir(dir))) {
			pid_t tid = (pid_t)atoi(d->d_name);

			if (tid > 0 && thread_syscall(tid, &arg0) == SYS_read &&
			    arg0 == timer) {
				closedir(dir);
				return tid;
			}
		}
		closedir(dir);
		b_sleep_ms(1);
	}
	return 0;
}

/* True once the service thread waits in thread_syscall nr, within ms. */
static bool service_in(long nr, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	long arg0;

	while (thread_syscall(service_tid, &arg0) != nr) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

int __wrap_sigaction(int s, const struct sigaction *act,
		     struct sigaction *old)
{
	struct sigaction cur;

	if (in_cancel && s == signo && !act) {
		/* The cancel's look, tree lock held.  The service thread
		 * still sleeps; the application's handler is installed. */
		__real_sigaction(s, NULL, &cur);
		fresh = service_in(SYS_read, 0) &&
			!(cur.sa_flags & SA_SIGINFO) &&
			cur.sa_handler == app_handler;
		took = b_wait_atomic(&theirs, 1, WAIT_MS);
		/* The deadline wakes it; it ends up waiting for the lock. */
		waited = service_in(SYS_futex, WAIT_MS);
	}
	return __real_sigaction(s, act, old);
}

static void *reader(intr_ctx *ctx, void *arg)
{
	char c;

	(void)arg;
	atomic_store(&body_tid, (int)b_gettid());
	/* intr_read: see handler-repair.c. */
	while (!intr_cancelled(ctx))
		if (intr_read(ctx, pipefd[0], &c, 1) > 0)
			return (void *)1;
	return NULL;
}

static bool body_in_read(void)
{
	uint64_t end = h_now_ns() + (uint64_t)WAIT_MS * 1000000u;
	long arg0;
	int tid;

	while (h_now_ns() < end) {
		tid = atomic_load(&body_tid);
		if (tid && thread_syscall(tid, &arg0) == SYS_read &&
		    arg0 == pipefd[0])
			return true;
		b_sleep_ms(1);
	}
	return false;
}

/* One try on host h with the other token's deadline ms away: 1 the cancel
 * reached the body in time, 0 not, -1 the try proves nothing (the service
 * thread woke before the cancel). */
static int one(enum h_host h, unsigned ms)
{
	const char *name = h_host_names[h];
	struct sigaction sa;
	intr_token *tok, *other;
	void *res = (void *)2;
	intr_task *t;
	int r;

	host_set(h);
	atomic_store(&body_tid, 0);
	atomic_store(&theirs, 0);
	fresh = took = waited = false;
	if (intr_token_new(&tok, NULL) || intr_token_new(&other, NULL)) {
		tap_ok(false, "%s: intr_token_new", name);
		return 0;
	}
	/* The application takes the signal over before the call. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = app_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(signo, &sa, NULL);

	r = host_spawn(&t, tok, reader, NULL);
	if (r) {
		tap_ok(false, "%s: spawn: %d", name, r);
		return 0;
	}
	if (!body_in_read()) {
		tap_ok(false, "%s: the body waits in read()", name);
		return 0;
	}
	intr_token_cancel_after(other, (uint64_t)ms * 1000000u);
	in_cancel = true;
	intr_token_cancel(tok);
	in_cancel = false;
	r = host_join_within(t, &res, WAIT_MS, pipefd[1]);
	intr_token_free(tok);
	intr_token_free(other);
	if (!fresh)
		return -1;
	tap_ok(took, "%s: the application's handler took the cancel's "
	       "signal", name);
	tap_ok(waited, "%s: the service thread woke and waits for the lock",
	       name);
	tap_ok(r == -ECANCELED && !res, "%s: the cancel reaches the body "
	       "within %u ms, with the re-send a minute away: %d (%s)", name,
	       WAIT_MS, r, r == HOST_TIMEOUT ? "still in read()" : "returned");
	return r == -ECANCELED;
}

int main(void)
{
	static const unsigned delays[] = { 200, 1000, 3000 };
	struct intr_config cfg;
	intr_token *tok;
	unsigned i;
	int h, r;

	/* The kernel picks the handler as it delivers, and SA_RESTART has
	 * it make the read again: ThreadSanitizer runs every handler
	 * itself, later, from its own. */
#if defined(__SANITIZE_THREAD__)
	tap_skip_all("ThreadSanitizer runs the application's handler itself, later");
#endif
#if !INTR_TEST_WINDOW
	tap_skip_all("without the assembly window a signal taken just before "
		     "the read is made again waits for the re-send");
#endif
	intr_config_default(&cfg);
	cfg.resend_us = 60000000;
	if (intr_configure(&cfg) || pipe(pipefd) || intr_token_new(&tok, NULL)) {
		tap_ok(false, "set-up");
		return tap_done();
	}
	signo = cfg.signo;
	intr_token_free(tok);
	service_tid = find_service();
	if (!tap_ok(service_tid > 0, "the service thread sleeps on its timer"))
		return tap_done();
	for (h = 0; h < H_HOSTS; h++) {
		r = -1;
		for (i = 0; r < 0 && i < sizeof(delays) / sizeof(delays[0]); i++)
			r = one((enum h_host)h, delays[i]);
		if (r < 0)
			tap_ok(false, "%s: the service thread slept until the "
			       "cancel's look, in %u tries", h_host_names[h], i);
	}
	return tap_done();
}
