/* SPDX-License-Identifier: MIT */
/*
 * Load the library with dlopen(), use it (a cancelled blocking call, a
 * deadline, spawn and join, intr_on_cancel), unload it with dlclose(), and
 * check that it is gone without a trace: not mapped, no thread left, no fd
 * left, the application's own handler for the interrupt signal back and
 * working, fork() working.  Twenty times over; then twice loaded and
 * never used, with a fork() while loaded and one after.
 *
 * Links only libdl and libpthread; the library is found through
 * INTR_DLOPEN_LIB, else lib/.libs/libinterruptible.so under the build
 * directory.  TAP output (tests/tap.h), one line per round; skipped when
 * no shared library was built.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

#include "tap.h"
#include "wait.h"

#define ROUNDS 20

/* A failure ends the program: what follows would depend on it. */
#define FAIL(...)							\
	do {								\
		tap_ok(false, __VA_ARGS__);				\
		exit(tap_done());					\
	} while (0)

static struct {
	int (*token_new)(intr_token **, intr_token *);
	int (*token_cancel)(intr_token *);
	int (*token_cancel_after)(intr_token *, uint64_t);
	int (*token_free)(intr_token *);
	int (*spawn)(intr_task **, intr_token *, intr_fn, void *);
	int (*join)(intr_task *, void **);
	int (*run)(intr_token *, intr_fn, void *, void **);
	ssize_t (*read)(intr_ctx *, int, void *, size_t);
	int (*sleep)(intr_ctx *, uint64_t);
	int (*on_cancel)(intr_ctx *, void (*)(void *), void *);
	int (*task_fd)(intr_task *);
} f;

static atomic_int app_count;

static void app_handler(int signo)
{
	(void)signo;
	atomic_fetch_add(&app_count, 1);
}

static void sym(void *h, void **p, const char *name)
{
	*p = dlsym(h, name);
	if (!*p)
		FAIL("no symbol %s: %s", name, dlerror());
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		FAIL("opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - (strcmp(path, "/proc/self/fd") == 0);	/* the DIR */
}

static int mapped(const char *needle)
{
	char line[PATH_MAX + 128];
	FILE *m = fopen("/proc/self/maps", "r");
	int n = 0;

	if (!m)
		FAIL("no /proc/self/maps");
	while (fgets(line, sizeof(line), m))
		n += strstr(line, needle) != NULL;
	fclose(m);
	return n;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Wait, at most 10 s, until what count() returns is want. */
static int settle(int (*count)(const char *), const char *arg, int want)
{
	uint64_t end = h_now_ns() + 10000000000ull;
	int n;

	while ((n = count(arg)) != want && h_now_ns() < end)
		sleep_ms(1);
	return n;
}

static atomic_int reader_tid;

static int reader_started(const char *unused)
{
	(void)unused;
	return atomic_load(&reader_tid) != 0;
}

static void *read_body(intr_ctx *ctx, void *arg)
{
	char b;

	atomic_store(&reader_tid, (int)syscall(SYS_gettid));
	return (void *)(intptr_t)f.read(ctx, *(int *)arg, &b, 1);
}

static atomic_int woken;

static void wake(void *arg)
{
	(void)arg;
	atomic_fetch_add(&woken, 1);
}

static void *wake_body(intr_ctx *ctx, void *arg)
{
	(void)arg;
	if (f.on_cancel(ctx, wake, NULL))
		return NULL;
	return (void *)(intptr_t)f.sleep(ctx, 10ull * 1000000000u);
}

static void *value_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static void wait_fd(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 5000) != 1)
		FAIL("a task did not finish within 5 s");
}

static void use(void)
{
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int fds[2], ret;

	if (pipe(fds))
		FAIL("pipe");
	/* A cancelled blocking call. */
	if (f.token_new(&tok, NULL))
		FAIL("intr_token_new");
	atomic_store(&reader_tid, 0);
	if (f.spawn(&t, tok, read_body, &fds[0]))
		FAIL("intr_spawn");
	/* Cancelled once it sleeps in the read: the signal must get it out. */
	if (settle(reader_started, NULL, 1) != 1 ||
	    !h_wait_blocked(atomic_load(&reader_tid), SYS_read, 5000))
		FAIL("the reading body never blocked in read");
	f.token_cancel(tok);
	wait_fd(f.task_fd(t));
	ret = f.join(t, &res);
	if (ret != -ECANCELED || (intptr_t)res != -ECANCELED)
		FAIL("cancelled read: %d, %ld", ret, (long)(intptr_t)res);
	if (f.token_free(tok))
		FAIL("intr_token_free");
	/* A deadline, and a wake-up action. */
	if (f.token_new(&tok, NULL) || f.token_cancel_after(tok, 2000000))
		FAIL("deadline token");
	atomic_store(&woken, 0);
	if (f.spawn(&t, tok, wake_body, NULL))
		FAIL("intr_spawn");
	wait_fd(f.task_fd(t));
	ret = f.join(t, &res);
	if (ret != -ETIMEDOUT)
		FAIL("deadline: %d", ret);
	if (res && atomic_load(&woken) != 1)
		FAIL("on_cancel ran %d times", atomic_load(&woken));
	if (f.token_free(tok))
		FAIL("intr_token_free");
	/* A plain call. */
	if (f.run(NULL, value_body, &fds[1], &res) || res != &fds[1])
		FAIL("run_interruptible");
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const char *path = getenv("INTR_DLOPEN_LIB");
	struct sigaction sa, cur;
	int round, fds0, threads0, st;
	char real[PATH_MAX];
	pid_t pid;

	if (!path || !*path)
		path = "lib/.libs/libinterruptible.so";
	if (access(path, R_OK))
		tap_skip_all("no shared library at %s", path);
	if (!realpath(path, real))
		FAIL("realpath %s", path);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = app_handler;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR1, &sa, NULL))
		FAIL("sigaction");
	fds0 = count_dir("/proc/self/fd");
	threads0 = count_dir("/proc/self/task");

	for (round = 0; round < ROUNDS; round++) {
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

		if (!h)
			FAIL("dlopen %s: %s", path, dlerror());
		sym(h, (void **)&f.token_new, "intr_token_new");
		sym(h, (void **)&f.token_cancel, "intr_token_cancel");
		sym(h, (void **)&f.token_cancel_after,
		    "intr_token_cancel_after");
		sym(h, (void **)&f.token_free, "intr_token_free");
		sym(h, (void **)&f.spawn, "intr_spawn");
		sym(h, (void **)&f.join, "intr_join");
		sym(h, (void **)&f.run, "run_interruptible");
		sym(h, (void **)&f.read, "intr_read");
		sym(h, (void **)&f.sleep, "intr_sleep");
		sym(h, (void **)&f.on_cancel, "intr_on_cancel");
		sym(h, (void **)&f.task_fd, "intr_task_fd");
		use();
		if (!mapped(real))
			FAIL("round %d: the library is not in /proc/self/maps "
			     "while loaded", round);
		if (dlclose(h))
			FAIL("dlclose: %s", dlerror());

		if (mapped(real))
			FAIL("round %d: the library is still mapped after "
			     "dlclose", round);
		/* A joined thread may still be listed for a moment. */
		if (settle(count_dir, "/proc/self/task", threads0) != threads0)
			FAIL("round %d: %d threads after dlclose, %d before",
			     round, count_dir("/proc/self/task"), threads0);
		if (settle(count_dir, "/proc/self/fd", fds0) != fds0)
			FAIL("round %d: %d fds after dlclose, %d before",
			     round, count_dir("/proc/self/fd"), fds0);
		if (sigaction(SIGUSR1, NULL, &cur) ||
		    cur.sa_handler != app_handler)
			FAIL("round %d: the application's handler is not back",
			     round);
		atomic_store(&app_count, 0);
		kill(getpid(), SIGUSR1);
		if (atomic_load(&app_count) != 1)
			FAIL("round %d: kill reached the handler %d times",
			     round, atomic_load(&app_count));
		pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(42);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 42)
			FAIL("round %d: fork after dlclose", round);
		tap_ok(true, "round %d: dlopen, use, dlclose: unmapped, %d "
		       "thread(s), %d fds, handler back, fork works", round,
		       threads0, fds0);
	}

	/* Loaded and never used: its fork handlers (registered at load)
	 * run in a fork, and go with the library. */
	for (round = 0; round < 2; round++) {
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

		if (!h)
			FAIL("dlopen %s: %s", path, dlerror());
		pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(42);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 42)
			FAIL("unused: fork while loaded");
		if (dlclose(h))
			FAIL("dlclose: %s", dlerror());
		if (mapped(real))
			FAIL("unused: the library is still mapped after "
			     "dlclose");
		pid = fork();
		if (pid < 0)
			FAIL("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(42);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 42)
			FAIL("unused: fork after dlclose");
		tap_ok(true, "dlopen, no use, fork, dlclose (%d): unmapped, "
		       "fork works", round + 1);
	}
	return tap_done();
}
