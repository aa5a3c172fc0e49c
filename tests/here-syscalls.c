/* SPDX-License-Identifier: MIT */
/*
 * Description: the system calls an empty, uncancelled in-place scope
 * (intr_run_here) makes on its thread, counted by a ptrace tracer.
 *
 * A child traces itself through its parent: between two marker calls
 * (getppid, which nothing else here makes) it runs ROUNDS empty scopes,
 * after a few to warm the thread and the library up.  The parent stops
 * the child at every system call entry of that thread (the library's own
 * threads are not traced) and counts.  The count is printed, by name, and
 * must not grow past SCOPE_MAX per scope: the tree lock's two mask
 * changes per section, the handler check and nothing else.  With a tree
 * lock that leaves the mask alone it is to become 0.  A futex wait for
 * the tree lock, which the library's own threads take too, is counted
 * apart: contention, not the scope's path.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"
#include "tap.h"

#define ROUNDS		100
#define WARM		3
/* Today: the four tree lock sections (bind, start, end, unlink) in two
 * pairs, each pair with every signal blocked from its first lock to its
 * last unlock: an rt_sigprocmask at each of the four ends.  No
 * rt_sigaction (the handler is looked at after a cancel's sends, not
 * before a call). */
#define SCOPE_MAX	4
#define NR_MAX		512

/* A sanitizer's interceptors make system calls of their own. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static void *empty(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

static int child(void)
{
	intr_token *tok;
	int i, bad = 0;

	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
		_exit(3);
	raise(SIGSTOP);
	if (intr_token_new(&tok, NULL))
		_exit(4);
	for (i = 0; i < WARM; i++)
		bad |= intr_run_here(tok, empty, NULL, NULL);
	syscall(SYS_getppid);
	for (i = 0; i < ROUNDS; i++)
		bad |= intr_run_here(NULL, empty, NULL, NULL);
	syscall(SYS_getppid);
	for (i = 0; i < ROUNDS; i++)
		bad |= intr_run_here(tok, empty, NULL, NULL);
	syscall(SYS_getppid);
	_exit(bad ? 5 : 0);
}

static const char *name_of(long nr)
{
	switch (nr) {
	case SYS_rt_sigprocmask: return "rt_sigprocmask";
	case SYS_rt_sigaction: return "rt_sigaction";
	case SYS_futex: return "futex";
	case SYS_gettid: return "gettid";
	case SYS_clock_gettime: return "clock_gettime";
	default: return "other";
	}
}

int main(void)
{
	struct __ptrace_syscall_info info;
	long counts[2][NR_MAX] = { { 0 } };
	long total[2] = { 0, 0 }, futex[2] = { 0, 0 };
	int phase = -1, status, k;
	long nr;
	pid_t pid;

	if (RUNNING_ON_VALGRIND)
		tap_skip_all("under valgrind the tracer would count "
			     "valgrind's own system calls");
	pid = fork();
	if (pid < 0)
		tap_skip_all("fork: %s", strerror(errno));
	if (!pid)
		return child();
	alarm(60);	/* a bound on the whole trace */
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
		tap_skip_all("the child could not be traced (status %#x)",
			     status);
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
		   (void *)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL))) {
		kill(pid, SIGKILL);
		tap_skip_all("ptrace is not permitted here: %s",
			     strerror(errno));
	}
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, pid, NULL, NULL))
			break;
		if (waitpid(pid, &status, 0) != pid || WIFEXITED(status) ||
		    WIFSIGNALED(status))
			break;
		if (!WIFSTOPPED(status) || WSTOPSIG(status) != (SIGTRAP | 0x80))
			continue;
		if (ptrace(PTRACE_GET_SYSCALL_INFO, pid,
			   (void *)sizeof(info), &info) <= 0 ||
		    info.op != PTRACE_SYSCALL_INFO_ENTRY)
			continue;
		nr = (long)info.entry.nr;
		if (nr == SYS_getppid) {
			phase++;
			continue;
		}
		if (phase < 0 || phase > 1)
			continue;
		if (nr == SYS_futex)
			futex[phase]++;
		else
			total[phase]++;
		if (nr >= 0 && nr < NR_MAX)
			counts[phase][nr]++;
	}
	waitpid(pid, &status, 0);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "the traced scopes ran and returned 0 (status %#x)", status);
	for (k = 0; k < 2; k++) {
		const char *what = k ? "token" : "no token";

		tap_diag("%s: %ld system calls in %d empty scopes (%.2f "
			 "each), and %ld futex calls of lock contention", what,
			 total[k], ROUNDS, (double)total[k] / ROUNDS, futex[k]);
		for (nr = 0; nr < NR_MAX; nr++)
			if (counts[k][nr])
				tap_diag("  %s (%ld): %ld", name_of(nr), nr,
					 counts[k][nr]);
		if (SANITIZED) {
			tap_skip("the count under a sanitizer is its own");
			continue;
		}
		tap_ok(phase >= 1 && total[k] <= (long)SCOPE_MAX * ROUNDS,
		       "an empty scope (%s) makes at most %d system calls: "
		       "%.2f", what, SCOPE_MAX, (double)total[k] / ROUNDS);
	}
	return tap_done();
}
