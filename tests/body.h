/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the TAP test programs that run bodies (no Check here, so
 * they may run anywhere): waiting with a bound until a thread is blocked
 * in a system call, joining with a bound, counting fds and threads, and
 * latency figures.  Include after config.h.
 */
#ifndef INTR_TEST_BODY_H
#define INTR_TEST_BODY_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"

/* The calling thread's kernel id. */
static inline pid_t b_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Sleep ms milliseconds, resuming after signals. */
static inline void b_sleep_ms(unsigned ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000L,
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* True if thread tid of this process sleeps inside a system call now:
 * /proc says so by its state (S) and its current system call (a number,
 * not "running"). */
static inline bool b_in_syscall(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold spaces */
	if (!p || p[1] != ' ' || (p[2] != 'S' && p[2] != 'D'))
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;	/* no such file: the state must do */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	return buf[0] >= '0' && buf[0] <= '9';
}

/* Wait (bounded) until *tidp names a thread, then until that thread is
 * blocked in a system call.  False if the bound passed first. */
static inline bool b_wait_blocked(atomic_int *tidp, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	pid_t tid;

	while (!(tid = atomic_load(tidp))) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	/* Twice in a row, 1 ms apart: a thread that only passes through a
	 * short system call on its way is not "blocked". */
	for (;;) {
		if (b_in_syscall(tid)) {
			b_sleep_ms(1);
			if (b_in_syscall(tid))
				return true;
		}
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
}

/* intr_join within ms; -ETIME (and the task is left running, its token
 * cancelled, and joined for good if it ever ends) when the bound passes. */
static inline int b_join_within(intr_task *t, void **result, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;
	int r;

	while ((r = intr_tryjoin(t, result)) == -EBUSY) {
		if (h_now_ns() > end)
			return -ETIME;
		b_sleep_ms(1);
	}
	return r;
}

/* Entries in a /proc directory (fds, threads). */
static inline int b_count_dir(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - (!strcmp(path, "/proc/self/fd") ? 1 : 0); /* d itself */
}

static inline int b_fds(void)
{
	return b_count_dir("/proc/self/fd");
}

static inline int b_threads(void)
{
	return b_count_dir("/proc/self/task");
}

/* ------------------------------------------------------------ latency */

struct b_lat {
	uint64_t *ns;
	size_t n, cap;
};

/* Room for n samples, so that adding them allocates nothing. */
static inline void b_lat_reserve(struct b_lat *l, size_t n)
{
	uint64_t *p;

	if (n <= l->cap)
		return;
	p = realloc(l->ns, n * sizeof(*p));
	if (!p)
		return;
	l->ns = p;
	l->cap = n;
}

static inline void b_lat_add(struct b_lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		if (!p)
			return;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
}

static inline int b_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-th quantile (0 to 1) in nanoseconds; 0 without samples. */
static inline uint64_t b_lat_q(struct b_lat *l, double q)
{
	size_t i;

	if (!l->n)
		return 0;
	qsort(l->ns, l->n, sizeof(*l->ns), b_cmp_u64);
	i = (size_t)(q * (double)(l->n - 1) + 0.5);
	return l->ns[i < l->n ? i : l->n - 1];
}

static inline void b_lat_free(struct b_lat *l)
{
	free(l->ns);
	l->ns = NULL;
	l->n = l->cap = 0;
}

#endif /* INTR_TEST_BODY_H */
