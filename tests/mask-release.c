/* SPDX-License-Identifier: MIT */
/*
 * Description: a context element's release hook opens SIGALRM, whose
 * handler cancels a token, while SIGALRM fires every 20 us; the worker
 * must block it again before it takes the tree lock, after a body and on
 * the path of a call cancelled before its body started.
 *
 * The handler takes the tree lock (intr_token_cancel).  If it lands on a
 * worker that holds that lock, the worker waits for itself for ever, and
 * so does every later call.  Each round runs in a child process so that a
 * deadlock shows as a child that does not finish within its bound.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "bound.h"
#include "tap.h"

#define CALLS		5000
#define JOIN_MS		5000
#define STALL_MS	5000	/* no call returned for this long: hung */

static atomic_int *progress;	/* shared with the parent: calls done */

static intr_token *alarm_tok;
static atomic_int alarms, alarms_on_worker;
static pid_t main_tid;

static void on_alarm(int sig)
{
	int e = errno;

	(void)sig;
	intr_token_cancel(alarm_tok);	/* takes the tree lock */
	atomic_fetch_add(&alarms, 1);
	if (b_gettid() != main_tid)
		atomic_fetch_add(&alarms_on_worker, 1);
	errno = e;
}

/* One record per call, handed from capture to release. */
struct rec {
	atomic_int body_ran;
	atomic_int release_tid;
};

static __thread struct rec *next_rec;
static atomic_int worker_skips;

static void *cap(void *data)
{
	(void)data;
	return next_rec;
}

static void *ins(void *captured, void *data)
{
	(void)captured;
	(void)data;
	return NULL;
}

static void res(void *saved, void *data)
{
	(void)saved;
	(void)data;
}

/* Opens SIGALRM on whatever thread runs it. */
static void rel(void *captured, void *data)
{
	struct rec *r = captured;
	sigset_t s;

	(void)data;
	atomic_store(&r->release_tid, b_gettid());
	if (b_gettid() != main_tid && !atomic_load(&r->body_ran))
		atomic_fetch_add(&worker_skips, 1);
	sigemptyset(&s);
	sigaddset(&s, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void *body(intr_ctx *ctx, void *arg)
{
	struct rec *r = arg;

	(void)ctx;
	atomic_store(&r->body_ran, 1);
	return NULL;
}

/* Child: CALLS calls; with skip, each one cancelled right after its
 * spawn, so that the worker often finds it cancelled before the body.
 * Exit 0, or what went wrong (10 a call that failed to start, 11 a join
 * error, 12 no SIGALRM on a worker, 13 no call skipped on a worker); a
 * deadlock never exits. */
static int child(bool skip)
{
	static const struct intr_context_element el = {
		.capture = cap, .install = ins, .restore = res, .release = rel,
	};
	struct itimerval it = { { 0, 20 }, { 0, 20 } };
	int calls = (int)b_scale(CALLS);
	struct sigaction sa;
	sigset_t s;
	int i, ret;

	main_tid = b_gettid();
	/* Only a release hook ever opens SIGALRM: the main thread and every
	 * thread it starts keep it blocked. */
	sigemptyset(&s);
	sigaddset(&s, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	if (intr_token_new(&alarm_tok, NULL) || intr_context_add(&el))
		return 10;
	setitimer(ITIMER_REAL, &it, NULL);
	for (i = 0; i < calls; i++) {
		struct rec r;
		intr_token *tok = NULL;
		intr_task *t;

		atomic_init(&r.body_ran, 0);
		atomic_init(&r.release_tid, 0);
		if (skip && intr_token_new(&tok, NULL))
			return 10;
		next_rec = &r;
		if (intr_spawn(&t, tok, body, &r))
			return 10;
		if (tok)
			intr_token_cancel(tok);
		ret = b_join_within(t, NULL, JOIN_MS);
		if (ret == B_TIMEOUT)
			for (;;)
				pause();	/* the parent reports it */
		if (ret != 0 && ret != -ECANCELED)
			return 11;
		if (tok)
			intr_token_free(tok);
		atomic_store(progress, i + 1);
	}
	it = (struct itimerval){ { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
	printf("# %d calls, %d SIGALRMs handled (%d on a worker), %d calls "
	       "skipped on a worker\n", calls, atomic_load(&alarms),
	       atomic_load(&alarms_on_worker), atomic_load(&worker_skips));
	fflush(stdout);
	if (!atomic_load(&alarms_on_worker) && b_full_scale())
		return 12;
	if (skip && !atomic_load(&worker_skips) && b_full_scale())
		return 13;
	return 0;
}

/* Wait for the child while it makes progress: its status, or -1 once no
 * call has returned for STALL_MS (it is killed then). */
static int wait_child(pid_t pid)
{
	uint64_t stall_end = h_now_ns() + STALL_MS * 1000000ull;
	int last = atomic_load(progress), st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		int now;

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) :
			       256 + WTERMSIG(st);
		now = atomic_load(progress);
		if (now != last) {
			last = now;
			stall_end = h_now_ns() + STALL_MS * 1000000ull;
		} else if (h_now_ns() > stall_end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		b_sleep_ms(1);
	}
}

static void run_round(bool skip)
{
	const char *what = skip ? "cancelled before the body" : "after a body";
	pid_t pid;
	int st;

	atomic_store(progress, 0);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		tap_ok(false, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(child(skip));
	st = wait_child(pid);
	tap_ok(st != -1, "%s: %ld calls with a release hook that opens "
	       "SIGALRM (20 us timer, its handler cancels) all return: %s "
	       "after %d calls", what, b_scale(CALLS),
	       st == -1 ? "hung: the worker took its lock with SIGALRM open," :
	       "no deadlock",
	       atomic_load(progress));
	if (st != -1)
		tap_ok(st == 0, "%s: every call returned 0 or -ECANCELED, "
		       "SIGALRM reached a worker%s (child status %d)", what,
		       skip ? ", calls were skipped on one" : "", st);
}

int main(void)
{
	progress = mmap(NULL, sizeof(*progress), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (progress == MAP_FAILED)
		tap_skip_all("mmap: %s", strerror(errno));
	atomic_init(progress, 0);
	run_round(false);
	run_round(true);
	return tap_done();
}
