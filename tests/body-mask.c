/* SPDX-License-Identifier: MIT */
/*
 * Description: a process that a body starts (posix_spawn, fork and exec)
 * inherits the signal mask of the thread that submitted the call, not the
 * worker's: SIGTERM, open on the submitter, stops it.
 *
 * The submitting thread blocks SIGUSR2 and SIGWINCH of its own accord and
 * leaves SIGTERM open; the child's SigBlk (/proc/PID/status) must be
 * exactly that, and a SIGTERM must end it.
 */
#include "config.h"

#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "bound.h"
#include "tap.h"

#define WAIT_MS 5000

extern char **environ;

static char *const sleep_argv[] = { "sleep", "30", NULL };

static void *spawn_body(intr_ctx *ctx, void *arg)
{
	pid_t pid;

	(void)ctx;
	(void)arg;
	if (posix_spawnp(&pid, "sleep", NULL, NULL, sleep_argv, environ))
		return (void *)-1L;
	return (void *)(long)pid;
}

static void *fork_exec_body(intr_ctx *ctx, void *arg)
{
	pid_t pid;

	(void)ctx;
	(void)arg;
	pid = fork();
	if (pid == 0) {
		execvp("sleep", sleep_argv);
		_exit(127);
	}
	return (void *)(long)pid;
}

static uint64_t sigblk(pid_t pid)
{
	char path[64], line[256];
	uint64_t v = UINT64_MAX;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SigBlk:", 7))
			v = strtoull(line + 7, NULL, 16);
	fclose(f);
	return v;
}

/* The mask as the kernel writes it in SigBlk. */
static uint64_t bits(const sigset_t *s)
{
	uint64_t v = 0;
	int i;

	for (i = 1; i <= 64; i++)
		if (sigismember(s, i) == 1)
			v |= 1ull << (i - 1);
	return v;
}

/* Wait until pid runs sleep (exec done), within WAIT_MS. */
static bool execd(pid_t pid)
{
	char path[64], comm[32] = "";
	uint64_t end = h_now_ns() + WAIT_MS * 1000000ull;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	while (h_now_ns() < end) {
		FILE *f = fopen(path, "r");

		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		if (!strncmp(comm, "sleep", 5))
			return true;
		b_sleep_ms(1);
	}
	return false;
}

static void one(const char *what, intr_fn fn, uint64_t want)
{
	void *res = NULL;
	uint64_t blk;
	pid_t pid;
	int r, st;

	r = run_interruptible(NULL, fn, NULL, &res);
	pid = (pid_t)(long)res;
	if (r || pid <= 0) {
		tap_ok(false, "%s: started (%d, %d)", what, r, (int)pid);
		return;
	}
	blk = execd(pid) ? sigblk(pid) : UINT64_MAX;
	tap_ok(blk == want, "%s: the child's SigBlk is the submitter's "
	       "mask (%016" PRIx64 ", want %016" PRIx64 ")", what, blk, want);
	kill(pid, SIGTERM);
	st = b_child_within(pid, WAIT_MS);
	tap_ok(st == 256 + SIGTERM, "%s: SIGTERM stops the child (%s)", what,
	       st == -1 ? "still running: SIGTERM blocked" :
	       st == 256 + SIGTERM ? "terminated by SIGTERM" : "other");
}

int main(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, SIGWINCH);
	pthread_sigmask(SIG_SETMASK, &s, NULL);
	one("posix_spawn from a body", spawn_body, bits(&s));
	one("fork and exec from a body", fork_exec_body, bits(&s));
	return tap_done();
}
