/* SPDX-License-Identifier: MIT */
/*
 * Bounded waits on another thread's state, for the test programs with or
 * without Check (none of these call it): a test that needs a body blocked
 * in the kernel before it cancels waits for exactly that, instead of
 * sleeping and hoping.
 *
 *   h_thread_blocked(tid, nr)        thread tid of this process sleeps in
 *                                    the kernel, in system call nr (-1: any)
 *   h_wait_blocked(tid, nr, ms)      the same, waited for, at most ms
 *
 * The state comes from /proc/self/task/TID/stat (S or D: asleep in the
 * kernel) and, where the kernel offers it, /proc/self/task/TID/syscall
 * (the number of the call it sleeps in).  Where that file cannot be read,
 * or speaks other numbers than this program's (under qemu-user they are
 * the host's), the state alone decides.
 */
#ifndef INTR_TEST_WAIT_H
#define INTR_TEST_WAIT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* The state letter of thread tid (R, S, D, ...), or 0 if it is gone. */
static inline char h_thread_state(pid_t tid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold spaces and parens */
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The system call thread tid sleeps in: its number, -1 if it runs in user
 * space, -2 if the kernel does not say. */
static inline long h_thread_syscall(pid_t tid)
{
	char path[64], buf[64];
	long nr = -2;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return -2;
	if (fgets(buf, sizeof(buf), f)) {
		char *end;

		if (!strncmp(buf, "running", 7))
			nr = -1;
		else {
			nr = strtol(buf, &end, 10);
			if (end == buf)
				nr = -2;
		}
	}
	fclose(f);
	return nr;
}

/*
 * Whether /proc/self/task/TID/syscall speaks this program's numbers: a
 * thread reading its own file with read(2) is, as the kernel reports it,
 * in read(2).  Under qemu-user the kernel's numbers are the host's.
 */
static inline bool h_syscall_numbers_ours(void)
{
	static atomic_int ours = -1;	/* not known yet */

	if (ours < 0) {
		char buf[64];
		int fd = open("/proc/thread-self/syscall", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = 0;
		ours = n > 0 && strtol(buf, NULL, 10) == SYS_read;
	}
	return ours;
}

/* True if thread tid sleeps in the kernel, in system call nr (-1: any). */
static inline bool h_thread_blocked(pid_t tid, long nr)
{
	char st = h_thread_state(tid);
	long in;

	if (st != 'S' && st != 'D')
		return false;
	if (nr < 0 || !h_syscall_numbers_ours())
		return true;
	in = h_thread_syscall(tid);
	return in == -2 || in == nr;
}

/* Wait, at most ms, until h_thread_blocked(tid, nr).  False on expiry,
 * or if the thread is gone. */
static inline bool h_wait_blocked(pid_t tid, long nr, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (!h_thread_blocked(tid, nr)) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 20000 };

		if (!h_thread_state(tid) || (int64_t)(end - h_now_ns()) <= 0)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

#endif /* INTR_TEST_WAIT_H */
