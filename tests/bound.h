/* SPDX-License-Identifier: MIT */
/*
 * Bounded waits for the test programs that print TAP (tests/tap.h) rather
 * than use Check: a join, a child process, a thread seen blocked in the
 * kernel, an atomic reaching a value.  None calls Check or exits: each
 * returns what it saw, and the program reports it with tap_ok().  Safe in
 * a forked child.
 */
#ifndef INTR_TEST_BOUND_H
#define INTR_TEST_BOUND_H

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"

#define B_TIMEOUT	(-10000)	/* b_join_within: not done in time */

/* Sleep ms milliseconds, resuming after signals.  To an absolute time:
 * a thread interrupted again and again (a collector stopping the world
 * without pause) still wakes on time. */
static inline void b_sleep_ms(unsigned ms)
{
	uint64_t at = h_now_ns() + (uint64_t)ms * 1000000u;
	struct timespec ts = {
		.tv_sec = (time_t)(at / 1000000000u),
		.tv_nsec = (long)(at % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* n scaled by INTR_TEST_SCALE (a percentage, default 100; the valgrind
 * builds set it low), at least 1. */
static inline long b_scale(long n)
{
	const char *env = getenv("INTR_TEST_SCALE");
	long pct = env && *env ? strtol(env, NULL, 10) : 100;

	if (pct <= 0)
		pct = 100;
	n = n * pct / 100;
	return n > 0 ? n : 1;
}

/* Whether the counts are at full scale: coverage is demanded only then. */
static inline bool b_full_scale(void)
{
	return b_scale(1000) >= 1000;
}

static inline pid_t b_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Wait up to ms for fd to be readable: 1 readable, 0 not in time. */
static inline int b_readable_within(int fd, unsigned ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	for (;;) {
		int64_t left = (int64_t)(end - h_now_ns());
		int r = poll(&p, 1, left > 0 ? (int)(left / 1000000) + 1 : 0);

		if (r > 0)
			return 1;
		if (r == 0 && left <= 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Join t if it finishes within ms; B_TIMEOUT (t left unjoined) if not. */
static inline int b_join_within(intr_task *t, void **result, unsigned ms)
{
	int fd = intr_task_fd(t);

	if (fd < 0)
		return fd;
	if (b_readable_within(fd, ms) != 1)
		return B_TIMEOUT;
	return intr_join(t, result);
}

/* True once *v >= want, waiting up to ms. */
static inline bool b_wait_atomic(atomic_int *v, int want, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (atomic_load(v) < want) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

/* The state letter of thread tid of process pid (/proc/pid/task/tid/stat:
 * 'S', 'R', ...), or 0 if it cannot be read. */
static inline char b_task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
		 (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The same for a thread of this process. */
static inline char b_thread_state(pid_t tid)
{
	return b_task_state(getpid(), tid);
}

/* True once thread tid sleeps in the kernel (state S), within ms. */
static inline bool b_thread_sleeps(pid_t tid, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (b_thread_state(tid) != 'S') {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

/* True once every other thread of this process sleeps in the kernel at
 * the same look, within ms.  Before a fork: a thread that runs may hold
 * a lock of a sanitizer's allocator, which the child would never see
 * released (glibc's malloc takes its locks around fork(); ASan's does
 * not). */
static inline bool b_others_asleep(unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	pid_t me = b_gettid();
	struct dirent *e;
	bool all;
	DIR *d;

	for (;;) {
		d = opendir("/proc/self/task");
		if (!d)
			return false;
		all = true;
		while (all && (e = readdir(d)))
			if (e->d_name[0] != '.' && atoi(e->d_name) != me &&
			    b_thread_state(atoi(e->d_name)) != 'S')
				all = false;
		closedir(d);
		if (all)
			return true;
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
}

/* The number of threads of this process. */
static inline int b_threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Threads:", 8))
			n = atoi(line + 8);
	fclose(f);
	return n;
}

/*
 * Wait up to ms for child pid.  Returns its exit status (0-255), 256 +
 * the signal that ended it, or -1 if it was still running at the bound (it
 * is then killed and reaped).
 */
static inline int b_child_within(pid_t pid, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) :
			       256 + WTERMSIG(st);
		if (r < 0 && errno != EINTR)
			return -2;
		if (h_now_ns() > end) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -1;
		}
		b_sleep_ms(1);
	}
}

#endif /* INTR_TEST_BOUND_H */
