/* SPDX-License-Identifier: MIT */
/*
 * Description: a process that links the library but never starts it
 * pays nothing for it in a fork child: the fork handlers registered at
 * load make no system call there (no new cookie key: no getrandom).
 *
 * A seccomp filter makes getrandom raise SIGSYS.  A child of a process
 * that never used the library must live; as a check that the filter
 * catches the library's own getrandom, a child that starts the runtime
 * (which draws its key) must die of SIGSYS.
 */
#include "config.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <interruptible.h>

#include "clock.h"
#include "tap.h"

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* The child's status after fn, in a fork of this process. */
static int in_child(int (*fn)(void))
{
	int st;
	pid_t p = fork();

	if (p == 0)
		_exit(fn());
	if (p < 0 || waitpid(p, &st, 0) != p)
		return -1;
	return st;
}

static int nothing(void)
{
	return 0;
}

static int start(void)
{
	intr_token *tok;

	return intr_token_new(&tok, NULL) ? 2 : 0;
}

int main(void)
{
#if defined(NATIVE_ARCH) && defined(SYS_getrandom)
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(code) / sizeof(code[0])),
		.filter = code,
	};
	int st;

	/* valgrind's own handling of a trapped system call asserts. */
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind cannot run a seccomp trap of getrandom");
	/* Linked for real: the handlers are registered at its load. */
	if (!intr_version())
		return 1;
	/* malloc draws its own key at its first use (stdout's buffer):
	 * before the filter. */
	tap_diag("a getrandom in a fork child raises SIGSYS from here on");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		tap_skip_all("no seccomp filter here");
	st = in_child(nothing);
	if (!tap_ok(st == 0, "a fork child of a process that never used the library: no getrandom"))
		tap_diag("child status %#x%s", st,
			 WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS ?
			 " (SIGSYS: getrandom in the fork handlers)" : "");
	st = in_child(start);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
	       "the filter catches the library's getrandom (a child that starts it dies of SIGSYS)");
	return tap_done();
#else
	tap_skip_all("no seccomp filter for this architecture here");
#endif
}
