/* SPDX-License-Identifier: MIT */
/*
 * Description: the mask and handler system calls an empty, uncancelled
 * run_interruptible makes, on the caller's thread and on its worker,
 * counted by a seccomp supervisor, and what a cancel adds.
 *
 * A supervisor thread, made before the filter, receives a notification
 * for every rt_sigprocmask and rt_sigaction of the main thread and of
 * every thread it makes after the filter (the library's service threads
 * and its worker inherit it), counts it under the thread's id and lets
 * the kernel carry the call out as asked (SECCOMP_USER_NOTIF_FLAG_CONTINUE):
 * every call is made, counted per thread, nothing is emulated.  The counts
 * of a call that nothing cancels are the same every time, so they are
 * asserted exactly, per call, over CALLS calls after a warm-up.
 */
#include "config.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bound.h"
#include "tap.h"

#define CALLS		200
#define MAX_THREADS	64

/* What an empty, uncancelled call costs, per call. */
#define CALLER_SIGPROCMASK	2
#define CALLER_SIGACTION	0
#define WORKER_SIGPROCMASK	2

struct count {
	atomic_int tid;
	atomic_long sigprocmask, sigaction;
};

static struct count counts[MAX_THREADS];
static atomic_int listener = -1;
static atomic_int worker_tid;

static struct count *count_of(int tid)
{
	int i, z;

	for (i = 0; i < MAX_THREADS; i++) {
		z = 0;
		if (atomic_load(&counts[i].tid) == tid ||
		    atomic_compare_exchange_strong(&counts[i].tid, &z, tid))
			return &counts[i];
	}
	return NULL;
}

static void counts_zero(void)
{
	int i;

	for (i = 0; i < MAX_THREADS; i++) {
		atomic_store(&counts[i].sigprocmask, 0);
		atomic_store(&counts[i].sigaction, 0);
	}
}

static void *supervisor(void *arg)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	struct count *c;
	int fd;

	(void)arg;
	while ((fd = atomic_load(&listener)) < 0)
		b_sleep_ms(1);
	for (;;) {
		memset(&req, 0, sizeof(req));
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
			if (errno == EINTR || errno == ENOENT)
				continue;
			return NULL;
		}
		c = count_of((int)req.pid);
		if (c && req.data.nr == SYS_rt_sigprocmask)
			atomic_fetch_add(&c->sigprocmask, 1);
		else if (c && req.data.nr == SYS_rt_sigaction)
			atomic_fetch_add(&c->sigaction, 1);
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		/* ENOENT: the thread was gone (a signal ended its wait). */
		ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

/* rt_sigprocmask and rt_sigaction to the supervisor, on this thread and
 * on every thread it makes from now on.  -errno if the kernel will not. */
static int filter(void)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigprocmask, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigaction, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	};
	struct sock_fprog fprog = {
		.len = sizeof(prog) / sizeof(prog[0]),
		.filter = prog,
	};
	long fd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		     SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
	if (fd < 0)
		return -errno;
	atomic_store(&listener, (int)fd);
	return 0;
}

static void *empty(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	(void)arg;
	atomic_store(&worker_tid, (int)syscall(SYS_gettid));
	return NULL;
}

static void *self_cancel(intr_ctx *ctx, void *arg)
{
	(void)arg;
	intr_token_cancel(intr_ctx_token(ctx));
	return NULL;
}

int main(void)
{
	struct count *me, *wk;
	pthread_t sup;
	long i, spm, sa, wspm;
	int r, bad = 0, wtid = 0;
	intr_token *tok;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
	tap_skip_all("a sanitizer's runtime makes mask calls of its own");
#endif
	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind runs the system calls itself");
	if (pthread_create(&sup, NULL, supervisor, NULL)) {
		tap_ok(false, "pthread_create");
		return tap_done();
	}
	r = filter();
	if (r)
		tap_skip_all("no seccomp notification here (%s)", strerror(-r));

	/* Warm-up: the service threads, the worker, the handler. */
	for (i = 0; i < 3; i++)
		if (run_interruptible(NULL, empty, NULL, NULL))
			bad++;
	wtid = atomic_load(&worker_tid);
	counts_zero();
	for (i = 0; i < CALLS; i++)
		if (run_interruptible(NULL, empty, NULL, NULL))
			bad++;
	tap_ok(!bad, "%d empty calls return 0", CALLS);
	tap_ok(atomic_load(&worker_tid) == wtid,
	       "one worker ran them all (tid %d, then %d)", wtid,
	       atomic_load(&worker_tid));

	me = count_of((int)syscall(SYS_gettid));
	wk = count_of(wtid);
	if (!me || !wk) {
		tap_ok(false, "the count table holds the threads");
		return tap_done();
	}
	spm = atomic_load(&me->sigprocmask);
	sa = atomic_load(&me->sigaction);
	wspm = atomic_load(&wk->sigprocmask);
	tap_diag("per call: caller %.2f rt_sigprocmask, %.2f rt_sigaction; "
		 "worker %.2f rt_sigprocmask", (double)spm / CALLS,
		 (double)sa / CALLS, (double)wspm / CALLS);
	tap_ok(spm == (long)CALLER_SIGPROCMASK * CALLS,
	       "the caller makes %d rt_sigprocmask per call (%ld in %d)",
	       CALLER_SIGPROCMASK, spm, CALLS);
	tap_ok(sa == (long)CALLER_SIGACTION * CALLS,
	       "the caller makes %d rt_sigaction per call (%ld in %d)",
	       CALLER_SIGACTION, sa, CALLS);
	tap_ok(wspm == (long)WORKER_SIGPROCMASK * CALLS,
	       "the worker makes %d rt_sigprocmask per call (%ld in %d)",
	       WORKER_SIGPROCMASK, wspm, CALLS);

	/* The control: a call whose body cancels its own token costs more
	 * on the worker than an empty one (the counter counts). */
	if (intr_token_new(&tok, NULL)) {
		tap_ok(false, "intr_token_new");
		return tap_done();
	}
	counts_zero();
	r = run_interruptible(tok, self_cancel, NULL, NULL);
	tap_ok(r == 0 || r == -ECANCELED, "a body that cancels its own "
	       "call's token: %d", r);
	tap_ok(atomic_load(&wk->sigprocmask) > WORKER_SIGPROCMASK,
	       "a cancel on the worker is counted there (%ld)",
	       atomic_load(&wk->sigprocmask));
	intr_token_free(tok);
	return tap_done();
}
