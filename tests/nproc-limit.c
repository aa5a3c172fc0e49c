/* SPDX-License-Identifier: MIT */
/*
 * Description: the library's threads under RLIMIT_NPROC: two service
 * threads from the first call on, one worker per running call, -EAGAIN
 * for a call that cannot have its threads.
 *
 * RLIMIT_NPROC counts every thread of the user, so each case runs in a
 * child under a user of its own: a uid no other process has when the test
 * runs as root (root itself is exempt from the limit), else a new user
 * namespace, where only the child's own threads count.  The child sets
 * the limit to its thread count plus the room the case gives it:
 *
 *   room 1: the first call cannot start both service threads: -EAGAIN;
 *   room 2: the service threads start (the thread count grows by two),
 *           but a call finds no worker: -EAGAIN; the README's example
 *           (a process with one thread and a limit of 3);
 *   room 3: one call runs; a second one beside it gets -EAGAIN; the
 *           first is cancelled and joined.
 *
 * Each child is bounded by alarm(): a lost cancel kills it, and fails.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"
#include "tap.h"

#define CHILD_BOUND_S 60	/* one child, valgrind included */
#define WAIT_MS 20000		/* one wait inside a child */
#define SKIP_STATUS 77

static int bad;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# child: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
	bad++;
}

static void expect(const char *what, int got, int want)
{
	if (got != want)
		fail("%s returned %d (%s), want %d", what, got,
		     strerror(got < 0 ? -got : got), want);
}

/* The threads of this process, from /proc/self/status. */
static int threads_now(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Become a user whose only threads are this process's.  0, or the reason
 * it cannot be done (the child then skips). */
static const char *own_user(void)
{
	static char why[128];

	if (getuid() == 0) {
		/* Far above any uid a system hands out. */
		uid_t u = 0x6a000000u + (uid_t)(getpid() & 0xfffff);

		if (setresuid(u, u, u)) {
			snprintf(why, sizeof(why), "cannot leave root: %s",
				 strerror(errno));
			return why;
		}
		/* Changing uid made the process undumpable, which
		 * LeakSanitizer (in an ASan build) needs it to be. */
		prctl(PR_SET_DUMPABLE, 1);
		return NULL;
	}
	if (unshare(CLONE_NEWUSER)) {
		snprintf(why, sizeof(why), "not root, and no user namespace: %s",
			 strerror(errno));
		return why;
	}
	return NULL;
}

static void set_limit(rlim_t n)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NPROC, &rl);
	rl.rlim_cur = n;
	if (setrlimit(RLIMIT_NPROC, &rl))
		fail("setrlimit(RLIMIT_NPROC, %lu): %s", (unsigned long)n,
		     strerror(errno));
}

static void *nothing(intr_ctx *ctx, void *arg)
{
	return arg;
}

static void *nothing_thread(void *arg)
{
	return arg;
}

static atomic_int started;

static void *blocked_read(intr_ctx *ctx, void *arg)
{
	int *fds = arg;
	char b;

	atomic_store(&started, 1);
	return (void *)(long)intr_read(ctx, fds[0], &b, 1);
}

/* Wait, at most ms, until the body has started. */
static bool wait_started(unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000 };

	while (!atomic_load(&started)) {
		if (h_now_ns() > end)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

static int child(int room)
{
	struct intr_config cfg;
	struct rlimit saved;
	const char *why;
	intr_token *tok;
	intr_task *t;
	pthread_t th;
	void *res;
	int n, fds[2];

	alarm(CHILD_BOUND_S);
	why = own_user();
	if (why) {
		printf("# %s\n", why);
		return SKIP_STATUS;
	}
	/* A thread made and joined first: a runtime that starts a thread of
	 * its own with the program's first (ThreadSanitizer does) has then
	 * done so before the count. */
	if (pthread_create(&th, NULL, nothing_thread, NULL) ||
	    pthread_join(th, NULL)) {
		fail("pthread_create before the limit");
		return 1;
	}
	intr_config_default(&cfg);
	cfg.idle_ms = 600000;	/* no worker leaves during the test */
	expect("intr_configure", intr_configure(&cfg), 0);
	if (pipe(fds))
		return 1;
	getrlimit(RLIMIT_NPROC, &saved);
	n = threads_now();
	if (n < 1) {
		fail("no thread count in /proc/self/status");
		return 1;
	}
	set_limit((rlim_t)(n + room));

	switch (room) {
	case 1:
		expect("intr_token_new, room for one thread",
		       intr_token_new(&tok, NULL), -EAGAIN);
		expect("run_interruptible, room for one thread",
		       run_interruptible(NULL, nothing, NULL, NULL), -EAGAIN);
		break;
	case 2:
		expect("intr_token_new, room for two threads",
		       intr_token_new(&tok, NULL), 0);
		if (threads_now() != n + 2)
			fail("%d threads after the first call, want %d + 2",
			     threads_now(), n);
		expect("run_interruptible, no room for a worker",
		       run_interruptible(NULL, nothing, NULL, NULL), -EAGAIN);
		set_limit(saved.rlim_cur);
		expect("run_interruptible, the limit back",
		       run_interruptible(NULL, nothing, NULL, NULL), 0);
		expect("intr_token_free", intr_token_free(tok), 0);
		break;
	case 3:
		expect("intr_token_new", intr_token_new(&tok, NULL), 0);
		res = NULL;
		expect("run_interruptible, room for one worker",
		       run_interruptible(NULL, nothing, &n, &res), 0);
		if (res != &n)
			fail("the body did not run");
		/* The worker is idle again: the next call takes it. */
		expect("intr_spawn on the idle worker",
		       intr_spawn(&t, tok, blocked_read, fds), 0);
		expect("run_interruptible beside it",
		       run_interruptible(NULL, nothing, NULL, NULL), -EAGAIN);
		/* Cancel the body while it runs, not before it starts. */
		if (!wait_started(WAIT_MS))
			fail("the spawned body did not start in %d ms", WAIT_MS);
		expect("intr_token_cancel", intr_token_cancel(tok), 0);
		expect("intr_join", intr_join(t, &res), -ECANCELED);
		if (res != (void *)(long)-ECANCELED)
			fail("the blocked read returned %ld, want -ECANCELED",
			     (long)res);
		expect("intr_token_free", intr_token_free(tok), 0);
		break;
	}
	/* LeakSanitizer needs a thread of its own at exit. */
	set_limit(saved.rlim_cur);
	return bad ? 1 : 0;
}

/* Run child(room) in a process of its own; its exit status. */
static int run(int room)
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid)
		_exit(child(room));
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFSIGNALED(st)) {
		tap_diag("child killed by signal %d%s", WTERMSIG(st),
			 WTERMSIG(st) == SIGALRM ? " (its time bound)" : "");
		return -1;
	}
	return WEXITSTATUS(st);
}

int main(void)
{
	static const char *const what[] = {
		[1] = "room for one thread beyond the process's own: the "
		      "first call cannot start both service threads, -EAGAIN",
		[2] = "room for two: the two service threads start, a call "
		      "finds no worker, -EAGAIN; works once the limit is back",
		[3] = "room for three: one call runs, a second one beside "
		      "it gets -EAGAIN; the first is cancelled",
	};
	int room, st;

	for (room = 1; room <= 3; room++) {
		st = run(room);
		if (st == SKIP_STATUS)
			tap_skip_all("RLIMIT_NPROC: no user of its own for "
				     "the child (see the line above)");
		tap_ok(st == 0, "%s", what[room]);
	}
	return tap_done();
}
