/* SPDX-License-Identifier: MIT */
/*
 * intr-latency: what a call costs when nothing is cancelled, and many
 * blocked calls cancelled at once.
 *
 * Overhead: one round trip of run_interruptible() with an empty body on a
 * warm pool, against pthread_create() + pthread_join() of an empty thread,
 * and against the floor, a two-thread futex ping-pong (one thread wakes
 * the other and sleeps until it is woken back), interleaved round by
 * round.  Pinned (the default), all of it runs on one CPU: the software
 * path alone, without the cost of waking another CPU.
 *
 * Scale: N bodies blocked in intr_read() on one pipe, all bound to one
 * token; once the kernel shows every one asleep, one intr_token_cancel()
 * and the time until the last body is back and the last intr_join() has
 * returned (the joins in spawn order, on the thread that cancelled).  The
 * canceller's thread CPU time inside intr_token_cancel() and the same
 * thread's CPU time for the joins, each divided by N, are what a call
 * costs the thread that stops it.  Each worker moves itself once, by
 * --scale-place: by default to every allowed CPU but the canceller's, so
 * that on a large machine the bodies end in parallel instead of queueing
 * on the canceller's CPU.  Memory per blocked call is the growth of the
 * resident set while they are started, divided by N.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <interruptible.h>

#include "lat.h"

/* ------------------------------------------------------------ overhead */
/* Each records the CPU it ran on in *arg, so that the table can show
 * whether the rounds ran on the calling thread's CPU. */
static void *empty_body(intr_ctx *ctx, void *arg)
{
	*(int *)arg = sched_getcpu();
	return arg;
}

/* Pinned: the whole round trip on the canceller's CPU.  The pool hands
 * the worker that finished last to the next call, so the empty calls after
 * this one run on the worker it pinned. */
static void *pin_body(intr_ctx *ctx, void *arg)
{
	pin_self(0);
	return arg;
}

static void *empty_thread(void *arg)
{
	*(int *)arg = sched_getcpu();
	return arg;
}

/* The ping-pong's word, and the CPU the pong side answered the last ping
 * on (it stores it before its answer, which the ping side waits for). */
struct pingpong {
	atomic_int w;
	atomic_int cpu;
};

/* The other half of the ping-pong: odd values are pings, -1 ends it. */
static void *pong(void *arg)
{
	struct pingpong *pp = arg;
	int v;

	if (opt.pin)
		pin_self(0);
	for (;;) {
		v = atomic_load(&pp->w);
		if (v < 0)
			break;
		if (v & 1) {
			atomic_store(&pp->cpu, sched_getcpu());
			atomic_store(&pp->w, v + 1);
			futex_wake(&pp->w);
			continue;
		}
		futex_wait(&pp->w, v, 0);
	}
	return NULL;
}

static uint64_t ping(struct pingpong *pp, int *seq)
{
	uint64_t t = now_ns();
	int v = *seq + 1;

	atomic_store(&pp->w, v);
	futex_wake(&pp->w);
	while (atomic_load(&pp->w) == v)
		futex_wait(&pp->w, v, 0);
	*seq = v + 1;
	return now_ns() - t;
}

unsigned measure_overhead(void)
{
	struct series *run, *here, *create, *futex;
	unsigned i, n = opt.loops * 10, failures = 0;
	struct pingpong pp = { 0 };
	pthread_t th;
	int seq = 0, r, cpu;

	if (n < 100)
		n = 100;
	futex = series_new("overhead", "", "futex ping-pong", "round",
			   "floor: two threads, futex wake and wait, one round trip");
	run = series_new("overhead", "", "run_interruptible", "round",
			 "empty body, NULL token, warm pool");
	here = series_new("overhead", "", "in-place scope", "round",
			  "empty body, NULL token, on the calling thread");
	create = series_new("overhead", "", "pthread_create+join", "round",
			    "an empty thread, default attributes");
	run->floor = futex;
	here->floor = futex;
	create->floor = futex;
	futex->floor = futex;

	if (pthread_create(&th, NULL, pong, &pp)) {
		fprintf(stderr, "intr-latency: cannot start a thread\n");
		return 1;
	}
	/* A bound for the whole phase: nothing here can be rescued. */
	watch_arm(60000 + n / 10, NULL, NULL);
	if (opt.pin)
		run_interruptible(NULL, pin_body, NULL, NULL);
	for (i = 0; i < 100; i++) {
		run_interruptible(NULL, empty_body, &cpu, NULL);
		ping(&pp, &seq);
	}
	for (i = 0; i < n; i++) {
		pthread_t t;
		uint64_t t0;
		int own = sched_getcpu();

		series_add(futex, ping(&pp, &seq));
		series_place(futex, atomic_load(&pp.cpu), own);

		own = sched_getcpu();
		t0 = now_ns();
		r = run_interruptible(NULL, empty_body, &cpu, NULL);
		if (r) {
			run->failures++;
			failures++;
		} else {
			series_add(run, now_ns() - t0);
			series_place(run, cpu, own);
		}

		own = sched_getcpu();
		t0 = now_ns();
		r = intr_run_here(NULL, empty_body, &cpu, NULL);
		if (r) {
			here->failures++;
			failures++;
		} else {
			series_add(here, now_ns() - t0);
			series_place(here, cpu, own);
		}

		own = sched_getcpu();
		t0 = now_ns();
		r = pthread_create(&t, NULL, empty_thread, &cpu);
		if (r || pthread_join(t, NULL)) {
			create->failures++;
			failures++;
		} else {
			series_add(create, now_ns() - t0);
			series_place(create, cpu, own);
		}
	}
	atomic_store(&pp.w, -1);
	futex_wake(&pp.w);
	pthread_join(th, NULL);
	watch_disarm();
	return failures;
}

/* ------------------------------------------------------------ scale */
struct scale_call {
	int fd;
	atomic_int tid;
	int cpu;			/* where the body came back */
	uint64_t t_body;
	bool cancelled;
};

static void *scale_body(intr_ctx *ctx, void *arg)
{
	struct scale_call *c = arg;
	ssize_t r;
	char b;

	place_scale_worker();
	atomic_store(&c->tid, lat_gettid());
	r = intr_read(ctx, c->fd, &b, 1);
	c->t_body = now_ns();
	c->cpu = sched_getcpu();
	c->cancelled = r == -ECANCELED;
	return NULL;
}

static long rss_bytes(void)
{
	unsigned long size, res;
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &res);
	fclose(f);
	return n == 2 ? (long)(res * (unsigned long)sysconf(_SC_PAGESIZE)) : -1;
}

struct scale_rescue {
	int fd;
	unsigned n;
};

static void scale_rescue(void *arg)
{
	struct scale_rescue *r = arg;
	unsigned i;

	for (i = 0; i < r->n; i++)
		if (write(r->fd, "x", 1) < 0)
			break;
}

/* CPU time of every thread of the process, and its context switches. */
static void process_cost(uint64_t *cpu_ns, long *switches)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru)) {
		*cpu_ns = 0;
		*switches = 0;
		return;
	}
	*cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		  1000000000u +
		  ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		  1000u;
	*switches = ru.ru_nvcsw + ru.ru_nivcsw;
}

/* A resource limit as text. */
static void limit_text(int resource, char *buf, size_t len)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl))
		snprintf(buf, len, "unknown");
	else if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%llu", (unsigned long long)rl.rlim_cur);
}

/* Why a worker could not start: the error and the limits that bound it. */
static void why_skipped(struct scale_result *res, unsigned i, int err)
{
	char nproc[24], as[24];

	limit_text(RLIMIT_NPROC, nproc, sizeof(nproc));
	limit_text(RLIMIT_AS, as, sizeof(as));
	snprintf(res->skipped, sizeof(res->skipped),
		 "call %u of %u could not start: %s (RLIMIT_NPROC %s, RLIMIT_AS %s)",
		 i + 1, res->calls, strerror(-err), nproc, as);
}

/* INTR_LATENCY_PERF_CTL=CTL[,ACK]: the FIFOs of perf stat --control
 * fifo:CTL,ACK (with -D -1), so that perf counts only from the cancel to
 * the last join.  cmd is "enable" or "disable"; waits for perf's ack when
 * an ACK FIFO is named. */
static void perf_ctl(const char *cmd)
{
	static int ctl = -2, ack = -1;
	const char *env;
	char path[256], *comma, buf[8];

	if (ctl == -2) {
		ctl = -1;
		env = getenv("INTR_LATENCY_PERF_CTL");
		if (!env || !*env)
			return;
		snprintf(path, sizeof(path), "%s", env);
		comma = strchr(path, ',');
		if (comma)
			*comma++ = 0;
		ctl = open(path, O_WRONLY | O_CLOEXEC);
		if (comma && ctl >= 0)
			ack = open(comma, O_RDONLY | O_CLOEXEC);
		if (ctl < 0)
			fprintf(stderr, "intr-latency: INTR_LATENCY_PERF_CTL: %s: %s\n",
				path, strerror(errno));
	}
	if (ctl < 0)
		return;
	if (write(ctl, cmd, strlen(cmd)) < 0 || write(ctl, "\n", 1) < 0)
		return;
	if (ack >= 0 && read(ack, buf, sizeof(buf)) < 0)
		return;
}

/* One round; returns 0, 1 if the size cannot start its threads (round 1
 * only: res->skipped says why), or -1 (a call not started, not blocked, or
 * not cancelled). */
static int scale_round(struct scale_result *res, unsigned round,
		       int pipefd[2])
{
	unsigned n = res->calls, started = 0, i;
	struct scale_rescue rs = { .fd = pipefd[1], .n = n };
	struct scale_round *sr = &res->r[round];
	static bool seen[CPU_SETSIZE];
	struct scale_call *calls;
	intr_task **tasks;
	intr_token *tok;
	uint64_t t0, c0, c1, p0, p1, end, last = 0;
	long rss0, rss1, sw0, sw1;
	int ret = 0, r;

	calls = calloc(n, sizeof(*calls));
	tasks = calloc(n, sizeof(*tasks));
	if (!calls || !tasks || intr_token_new(&tok, NULL)) {
		free(calls);
		free(tasks);
		return -1;
	}
	watch_arm(60000, scale_rescue, &rs);
	rss0 = rss_bytes();
	for (i = 0; i < n; i++) {
		calls[i].fd = pipefd[0];
		r = intr_spawn(&tasks[i], tok, scale_body, &calls[i]);
		if (r) {
			if (round == 0 && (r == -EAGAIN || r == -ENOMEM)) {
				why_skipped(res, i, r);
				ret = 1;
			} else {
				fprintf(stderr, "intr-latency: scale: call %u: %s\n",
					i, strerror(-r));
				ret = -1;
			}
			break;
		}
		started++;
	}
	/* Every call asleep in the kernel, within a bound. */
	end = now_ns() + 30000000000ull;
	for (i = 0; i < started && !ret; i++) {
		pid_t tid;

		while (!(tid = atomic_load(&calls[i].tid)) ||
		       blocked_syscall(tid) < 0) {
			if (now_ns() > end) {
				fprintf(stderr, "intr-latency: scale: call %u never blocked\n", i);
				ret = -1;
				break;
			}
			sleep_ns(100000);
		}
	}
	rss1 = rss_bytes();
	if (round == 0)
		res->rss_per_call = started && rss0 >= 0 && rss1 >= 0 ?
				    (rss1 - rss0) / (long)started : -1;

	perf_ctl("enable");
	process_cost(&p0, &sw0);
	t0 = now_ns();
	c0 = thread_cpu_ns();
	intr_token_cancel(tok);
	c1 = thread_cpu_ns();
	sr->cancel_wall_ns = now_ns() - t0;
	sr->cancel_cpu_ns = c1 - c0;
	for (i = 0; i < started; i++) {
		intr_join(tasks[i], NULL);
		if (i + 1 == (started + 1) / 2)
			sr->half_return_ns = now_ns() - t0;
	}
	sr->last_return_ns = now_ns() - t0;
	sr->join_cpu_ns = thread_cpu_ns() - c1;
	process_cost(&p1, &sw1);
	sr->proc_cpu_ns = p1 - p0;
	sr->switches = sw1 - sw0;
	perf_ctl("disable");
	if (watch_disarm())
		ret = -1;
	sr->cancelled = 0;
	memset(seen, 0, sizeof(seen));
	sr->cpus = 0;
	for (i = 0; i < started; i++) {
		if (calls[i].cancelled)
			sr->cancelled++;
		if (calls[i].t_body > last)
			last = calls[i].t_body;
		if (calls[i].cpu >= 0 && calls[i].cpu < CPU_SETSIZE &&
		    !seen[calls[i].cpu]) {
			seen[calls[i].cpu] = true;
			sr->cpus++;
		}
	}
	sr->last_body_ns = last > t0 ? last - t0 : 0;
	if (!ret && sr->cancelled != n)
		ret = -1;
	intr_token_free(tok);
	free(calls);
	free(tasks);
	return ret;
}

/* ------------------------------------------------------------ floor */
struct floor_thread {
	int fd;
	atomic_int tid;
	uint64_t t_back;
	bool eintr;
};

static void *floor_body(void *arg)
{
	struct floor_thread *f = arg;
	char b;

	place_scale_worker();
	atomic_store(&f->tid, lat_gettid());
	f->eintr = read(f->fd, &b, 1) < 0 && errno == EINTR;
	f->t_back = now_ns();
	return NULL;
}

/* The same stop without the library: n plain threads blocked in read(),
 * one signal each (the raw peers' handler, no SA_RESTART) from this
 * thread.  What one send costs the sender is the floor of the canceller's
 * CPU per call.  Returns 0, or -1 if a thread could not start or did not
 * come back with EINTR. */
static int floor_round(struct scale_round *sr, unsigned n, int pipefd[2])
{
	struct scale_rescue rs = { .fd = pipefd[1], .n = n };
	union sigval sv = { .sival_int = 0 };
	struct floor_thread *ft;
	unsigned started = 0, i;
	pthread_t *th;
	uint64_t t0 = 0, c0, end, last = 0;
	int ret = 0;

	sr->floor_ok = false;
	ft = calloc(n, sizeof(*ft));
	th = calloc(n, sizeof(*th));
	if (!ft || !th) {
		free(ft);
		free(th);
		return -1;
	}
	watch_arm(60000, scale_rescue, &rs);
	for (i = 0; i < n; i++) {
		ft[i].fd = pipefd[0];
		if (pthread_create(&th[i], NULL, floor_body, &ft[i]))
			break;
		started++;
	}
	if (started < n)
		ret = -1;
	/* A rescue wakes only the threads that exist: a byte more would be
	 * left in the pipe the library's rounds block on. */
	rs.n = started;
	end = now_ns() + 30000000000ull;
	for (i = 0; i < started && !ret; i++) {
		pid_t tid;

		while (!(tid = atomic_load(&ft[i].tid)) ||
		       blocked_syscall(tid) < 0) {
			if (now_ns() > end) {
				ret = -1;
				break;
			}
			sleep_ns(100000);
		}
	}
	if (!ret) {
		t0 = now_ns();
		c0 = thread_cpu_ns();
		for (i = 0; i < started; i++)
			pthread_sigqueue(th[i], opt.raw_signo, sv);
		sr->floor_send_cpu_ns = thread_cpu_ns() - c0;
		sr->floor_send_wall_ns = now_ns() - t0;
	} else {
		scale_rescue(&rs);
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (watch_disarm())
		ret = -1;
	if (!ret) {
		for (i = 0; i < started; i++) {
			if (!ft[i].eintr)
				ret = -1;
			if (ft[i].t_back > last)
				last = ft[i].t_back;
		}
		sr->floor_last_ns = last > t0 ? last - t0 : 0;
		sr->floor_ok = !ret;
	}
	free(ft);
	free(th);
	return ret;
}

unsigned measure_scale(struct scale_result *res, unsigned calls)
{
	unsigned rounds = opt.scale_rounds, i, failures = 0;
	pthread_attr_t a;
	int pipefd[2], r;

	memset(res, 0, sizeof(*res));
	res->calls = calls;
	if (!rounds)
		rounds = 1;
	if (rounds > 16)
		rounds = 16;
	if (pthread_getattr_default_np(&a) == 0) {
		pthread_attr_getstacksize(&a, &res->stack_reserved);
		pthread_attr_destroy(&a);
	}
	if (pipe(pipefd))
		return 1;
	res->ok = true;
	for (i = 0; i < rounds; i++) {
		progress("scale: %u calls, round %u/%u\r", calls, i + 1, rounds);
		r = scale_round(res, i, pipefd);
		if (r > 0) {
			res->ok = false;
			break;
		}
		if (r) {
			res->ok = false;
			failures++;
		}
		res->rounds = i + 1;
		progress("scale: %u plain threads, round %u/%u\r", calls, i + 1,
			 rounds);
		if (floor_round(&res->r[i], calls, pipefd))
			fprintf(stderr, "intr-latency: scale: %u plain threads, round %u: "
				"not all started or stopped; no floor\n", calls,
				i + 1);
	}
	close(pipefd[0]);
	close(pipefd[1]);
	return failures;
}
