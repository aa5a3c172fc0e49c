/* SPDX-License-Identifier: MIT */
/*
 * Description: a join that went to sleep before its call ended is woken
 * by the completion, and joins racing completions all return.
 *
 * The first case holds each body in a read of a pipe until the joining
 * thread is seen asleep in the kernel in futex(2) (from
 * /proc/self/task/TID/syscall), then lets the body return: the join must
 * come back within the bound, which it can only do if the completion woke
 * it.  The second runs calls whose bodies return after a short spin of
 * varying length while another thread joins each at once, so that the
 * join sometimes finds the call ended, sometimes sleeps, and sometimes
 * arrives while the worker is completing it.  Every wait is bounded: a
 * join that is never woken fails the case instead of hanging (the program
 * ends with the joiner still asleep).
 *
 * The fifth (fault build) forks from a handler on a thread waiting in
 * run_interruptible while the worker, its call over and the task's handle
 * taken out, is held before the release: the child, where no worker will
 * release it, must end that wait itself.  The last counts the task
 * handles left in the registry (linked statically: it is hidden) once
 * every call is joined, intr_join's that slept and run_interruptible's,
 * whose worker takes the handle out: none.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bound.h"
#include "internal.h"
#include "tap.h"
#ifdef INTR_FAULT_INJECTION
#include "fault.h"
#endif

#define BOUND_MS	10000u

static unsigned tasks_left;

/* ------------------------------------------------------------ asleep */
struct sleeper {
	intr_task *task;
	atomic_int tid;			/* the joining thread */
	atomic_int joined;		/* 1 once intr_join returned */
	int ret;
	void *result;
};

static void *read_byte(intr_ctx *ctx, void *arg)
{
	int fd = (int)(intptr_t)arg;
	char c;

	(void)ctx;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	return arg;
}

static void *join_thread(void *arg)
{
	struct sleeper *s = arg;

	atomic_store(&s->tid, (int)b_gettid());
	s->ret = intr_join(s->task, &s->result);
	atomic_store(&s->joined, 1);
	return NULL;
}

/* The system call thread tid sleeps in, -1 if none or unknown. */
static long sleeping_in(pid_t tid)
{
	char path[64], buf[128];
	ssize_t n;
	int fd;

	if (b_thread_state(tid) != 'S')
		return -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (buf[0] < '0' || buf[0] > '9')
		return -1;	/* "running" */
	return strtol(buf, NULL, 10);
}

/* True once thread tid sleeps in futex(2), within ms. */
static bool sleeps_in_futex(pid_t tid, unsigned ms)
{
	uint64_t end = h_now_ns() + (uint64_t)ms * 1000000u;

	while (sleeping_in(tid) != SYS_futex) {
		if (h_now_ns() > end)
			return false;
		b_sleep_ms(1);
	}
	return true;
}

/* One round: false (with a line saying why) if the join was not seen
 * asleep or did not come back. */
static bool asleep_round(int round)
{
	struct sleeper s = { 0 };
	pthread_t th;
	int fds[2], r;
	bool ok = false, seen;

	if (pipe(fds)) {
		tap_diag("pipe: %s", strerror(errno));
		return false;
	}
	r = intr_spawn(&s.task, NULL, read_byte, (void *)(intptr_t)fds[0]);
	if (r) {
		tap_diag("round %d: intr_spawn: %s", round, strerror(-r));
		goto out;
	}
	if (pthread_create(&th, NULL, join_thread, &s)) {
		tap_diag("round %d: pthread_create failed", round);
		if (write(fds[1], "x", 1) != 1 ||
		    b_join_within(s.task, NULL, BOUND_MS))
			tap_diag("round %d: the call did not end", round);
		goto out;
	}
	seen = b_wait_atomic(&s.tid, 1, BOUND_MS) &&
	       sleeps_in_futex(atomic_load(&s.tid), BOUND_MS);
	if (!seen)
		tap_diag("round %d: the join was never seen asleep", round);
	/* Now the body returns; the completion must wake the join. */
	if (write(fds[1], "x", 1) != 1) {
		tap_diag("round %d: write: %s", round, strerror(errno));
		goto out;	/* the joiner stays blocked: the case fails */
	}
	if (!b_wait_atomic(&s.joined, 1, BOUND_MS)) {
		tap_diag("round %d: the sleeping join did not return within "
			 "%u ms", round, BOUND_MS);
		goto out;	/* the joiner is left asleep */
	}
	pthread_join(th, NULL);
	ok = seen && s.ret == 0 && s.result == (void *)(intptr_t)fds[0];
	if (s.ret || s.result != (void *)(intptr_t)fds[0])
		tap_diag("round %d: intr_join returned %d, result %p", round,
			 s.ret, s.result);
out:
	close(fds[0]);
	close(fds[1]);
	return ok;
}

/* ------------------------------------------------------------ racing */
#define RACE_SPIN_MAX	2000u

struct racer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	intr_task *task;		/* mu: the round's, set by the spawner */
	int posted;			/* mu: rounds spawned */
	atomic_int joined;		/* rounds joined */
	atomic_int bad;			/* a join that returned wrongly */
	int rounds;
};

static void *spin_body(intr_ctx *ctx, void *arg)
{
	unsigned n = (unsigned)(uintptr_t)arg, i;
	volatile unsigned sink = 0;

	(void)ctx;
	for (i = 0; i < n; i++)
		sink += i;
	return arg;
}

static void *race_joiner(void *arg)
{
	struct racer *rc = arg;
	void *res;
	int i, r;

	for (i = 0; i < rc->rounds; i++) {
		intr_task *t;

		/* Unbounded here, bounded by the spawner, which gives up
		 * on a round that is not joined in time and ends the
		 * program with this thread still waiting. */
		pthread_mutex_lock(&rc->mu);
		while (rc->posted <= i)
			pthread_cond_wait(&rc->cv, &rc->mu);
		t = rc->task;
		pthread_mutex_unlock(&rc->mu);
		res = NULL;
		r = intr_join(t, &res);
		if (r || (uintptr_t)res > RACE_SPIN_MAX)
			atomic_fetch_add(&rc->bad, 1);
		atomic_store(&rc->joined, i + 1);
	}
	return NULL;
}

static void racing_joins(void)
{
	struct racer rc = {
		.mu = PTHREAD_MUTEX_INITIALIZER,
		.cv = PTHREAD_COND_INITIALIZER,
		.rounds = (int)b_scale(2000),
	};
	unsigned seed = 12345;
	intr_task *t;
	pthread_t th;
	int i, r, spawned = 0;

	if (pthread_create(&th, NULL, race_joiner, &rc)) {
		tap_ok(false, "pthread_create failed");
		return;
	}
	for (i = 0; i < rc.rounds; i++) {
		seed = seed * 1103515245u + 12345u;
		r = intr_spawn(&t, NULL, spin_body,
			       (void *)(uintptr_t)((seed >> 8) % RACE_SPIN_MAX));
		if (r) {
			tap_diag("intr_spawn: %s", strerror(-r));
			break;
		}
		spawned++;
		pthread_mutex_lock(&rc.mu);
		rc.task = t;
		rc.posted = i + 1;
		pthread_cond_signal(&rc.cv);
		pthread_mutex_unlock(&rc.mu);
		if (!b_wait_atomic(&rc.joined, i + 1, BOUND_MS))
			break;
	}
	tap_ok(spawned == rc.rounds && atomic_load(&rc.joined) == rc.rounds &&
	       atomic_load(&rc.bad) == 0,
	       "%d joins racing their calls' completions: %d returned within "
	       "%u ms each, %d wrongly", rc.rounds, atomic_load(&rc.joined),
	       BOUND_MS, atomic_load(&rc.bad));
	if (atomic_load(&rc.joined) == rc.rounds)
		pthread_join(th, NULL);
}

/*
 * intr_tryjoin spinning on calls as they end: one that finds the worker
 * between its two stores (done 1) must not take the task for released, or
 * it frees memory the worker still writes, and the next task, made in the
 * same memory, looks done before its body returned.
 */
static void tryjoin_spin(void)
{
	int rounds = (int)b_scale(20000), i, r = 0, bad = 0, busy;
	uint64_t end = h_now_ns() + 30000000000ull;
	void *res;
	intr_task *t;

	if (RUNNING_ON_VALGRIND)
		rounds = 200;
	for (i = 0; i < rounds && h_now_ns() < end; i++) {
		void *mark = (void *)(uintptr_t)(i % 64 + 1);

		r = intr_spawn(&t, NULL, spin_body, mark);
		if (r)
			break;
		busy = 0;
		res = NULL;
		while ((r = intr_tryjoin(t, &res)) == -EBUSY) {
			if (++busy % 1024 == 0 && h_now_ns() > end)
				break;
		}
		if (r == -EBUSY) {
			/* Bounded out; join it for good. */
			r = intr_join(t, &res);
		}
		if (r || res != mark)
			bad++;
		r = 0;
	}
	tap_ok(!r && !bad && i > 0, "intr_tryjoin spinning on %d calls as they "
	       "end: %d returned wrongly or failed", i, bad);
}

/* The same with the completion held open between its two stores (the
 * fault hook's delay, 20 ms): every tryjoin meets done 1. */
static void tryjoin_held(void)
{
#ifdef INTR_FAULT_INJECTION
	int rounds = 20, i, r, bad = 0, early = 0;
	void *res;
	intr_task *t;

	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 20);
	for (i = 0; i < rounds; i++) {
		void *mark = (void *)(uintptr_t)(i + 1);

		if (intr_spawn(&t, NULL, spin_body, mark))
			break;
		res = NULL;
		while ((r = intr_tryjoin(t, &res)) == -EBUSY)
			;
		if (r || res != mark)
			bad++;
		/* The only worker busy: it must have let go of the task. */
		if (intr__fault_delaying(INTR_DELAY_COMPLETE))
			early++;
	}
	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 0);
	tap_ok(i == rounds && !bad && !early, "intr_tryjoin on %d calls held "
	       "between done 1 and released: %d returned wrongly or failed, "
	       "%d while the worker still held the task", i, bad, early);
#else
	tap_skip("intr_tryjoin on calls held open: needs the fault hook's "
		 "delay (make check-fault)");
#endif
}

#ifdef INTR_FAULT_INJECTION
static volatile sig_atomic_t in_child, held_at_fork;
static volatile pid_t child;

/* Over the join: fork, noting whether the worker was held then. */
static void fork_handler(int sig)
{
	pid_t p;

	(void)sig;
	held_at_fork = intr__fault_delaying(INTR_DELAY_COMPLETE) > 0;
	p = fork();
	if (p == 0)
		in_child = 1;
	else
		child = p;
}

struct kicker {
	pthread_t target;
	atomic_int sent, over;
};

/* Once the worker is held before the release, signal the joiner; then
 * sleep until the case is over, not exiting while the joiner forks (a
 * thread that exits frees memory, under the allocator's lock that a
 * sanitizer's fork does not take). */
static void *kick(void *arg)
{
	struct kicker *k = arg;
	uint64_t end = h_now_ns() + (uint64_t)BOUND_MS * 1000000u;

	while (!intr__fault_delaying(INTR_DELAY_COMPLETE)) {
		if (h_now_ns() > end)
			return NULL;
		b_sleep_ms(1);
	}
	pthread_kill(k->target, SIGUSR2);
	atomic_store(&k->sent, 1);
	b_wait_atomic(&k->over, 1, BOUND_MS);
	return NULL;
}
#endif

static void fork_over_join(void)
{
#ifdef INTR_FAULT_INJECTION
	struct sigaction sa, old;
	struct kicker k = { pthread_self(), 0, 0 };
	void *res = NULL;
	pthread_t th;
	int r, st = -2;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fork_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, &old);
	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 300);
	if (pthread_create(&th, NULL, kick, &k)) {
		intr__fault_delay_arm(INTR_DELAY_COMPLETE, 0);
		tap_ok(false, "pthread_create");
		return;
	}
	r = run_interruptible(NULL, spin_body, (void *)(uintptr_t)10, &res);
	if (in_child)
		_exit(r == 0 && res == (void *)(uintptr_t)10 ? 0 : 1);
	intr__fault_delay_arm(INTR_DELAY_COMPLETE, 0);
	atomic_store(&k.over, 1);
	pthread_join(th, NULL);
	sigaction(SIGUSR2, &old, NULL);
	if (child > 0)
		st = b_child_within(child, BOUND_MS);
	tap_ok(atomic_load(&k.sent) && held_at_fork && r == 0 && st == 0,
	       "a fork over run_interruptible's join, the worker held before "
	       "the release: the parent's call returns %d, the child's join "
	       "%s", r, st == -1 ? "still waiting after the bound" :
	       st == 0 ? "returns the result" : "failed");
#else
	tap_skip("a fork over a join held before the release: needs the "
		 "fault hook's delay (make check-fault)");
#endif
}

static void count_task(void *obj)
{
	(void)obj;
	tasks_left++;
}

/* Every call joined: no task handle is left. */
static void registry_empty(void)
{
	int i, bad = 0;
	sigset_t ss;

	for (i = 0; i < 100; i++)
		if (run_interruptible(NULL, spin_body, (void *)(uintptr_t)i,
				      NULL))
			bad++;
	intr__tree_lock(&ss);
	intr__handles_each(INTR_H_TASK, count_task);
	intr__tree_unlock(&ss);
	tap_ok(!bad && !tasks_left, "every call joined (100 more by "
	       "run_interruptible, %d failed): %u task handles left", bad,
	       tasks_left);
}

int main(void)
{
	int rounds = (int)b_scale(50), i;

	if (RUNNING_ON_VALGRIND)
		rounds = 3;
	for (i = 0; i < rounds; i++)
		if (!asleep_round(i))
			break;
	tap_ok(i == rounds, "a join asleep in futex(2) before its call ended "
	       "is woken by the completion: %d of %d rounds", i, rounds);
	racing_joins();
	tryjoin_spin();
	tryjoin_held();
	fork_over_join();
	registry_empty();
	return tap_done();
}
