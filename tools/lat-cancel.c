/* SPDX-License-Identifier: MIT */
/*
 * intr-latency: cancel latency, the library against its peers.
 *
 * One iteration: a waiter blocks in the call under test; the canceller
 * waits until the kernel shows the waiter asleep in a system call
 * (/proc/self/task/TID/syscall), takes t0 and stops it by the method under
 * test.  The waiter takes t_body as soon as it is back in user space with
 * the stop in hand; a finalizer (intr_defer) takes t_final; the canceller
 * takes t_return when it knows the waiter is done (intr_join returned for
 * the library, a futex wake for the peers, pthread_join for
 * pthread_cancel).
 *
 * Library waiters are bodies on the pool's workers; peers are plain threads
 * made for the iteration, with no library code in their path.  Every wait
 * is bounded by the watchdog: an iteration that does not end is rescued
 * (data is written to what the waiter blocks on) and counted as failed.
 *
 * Placement: a waiter woken on the canceller's own CPU costs less than one
 * woken on another, and left alone the kernel places a pooled worker and a
 * fresh thread differently.  So by default every waiter, whatever its
 * method, runs on the waiters' CPU and the canceller on its own (lat.h,
 * pin_setup), and each iteration records where the waiter came back, so
 * that a run with --no-pin shows whether its methods were placed alike.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>
#ifdef HAVE_LIBURING
#include <interruptible/uring.h>
#endif

#include "lat.h"

/* An iteration that has not ended after this long is rescued: far
 * beyond any stop, even on a loaded machine whose waiter's CPU is busy. */
#define BOUND_MS 10000u
/* How long a sleeping waiter sleeps: longer than any bound. */
#define SLEEP_NS 60000000000ull

const char *const call_name[NCALLS] = {
	[CALL_URING] = "intr_uring_wait_cqe",
	[CALL_URING_RAW] = "io_uring_wait_cqe",
	[CALL_READ] = "intr_read",
	[CALL_READ_RAW] = "read",
	[CALL_POLL] = "intr_poll",
	[CALL_SLEEP] = "intr_sleep",
	[CALL_COND] = "intr_cond_wait",
};

const char *const call_short[NCALLS] = {
	[CALL_URING] = "uring",
	[CALL_URING_RAW] = "uring-raw",
	[CALL_READ] = "read",
	[CALL_READ_RAW] = "read-raw",
	[CALL_POLL] = "poll",
	[CALL_SLEEP] = "sleep",
	[CALL_COND] = "cond",
};

const char *const method_name[NMETHODS] = {
	[M_EVENTFD] = "eventfd",
	[M_KILL] = "kill",
	[M_NOP] = "nop",
	[M_MSGRING] = "msgring",
	[M_INTR] = "intr",
	[M_HERE] = "intr-in-place",
	[M_POLL] = "poll",
	[M_PCANCEL] = "pthread_cancel",
};

static bool is_uring(enum lat_call c)
{
	return c == CALL_URING || c == CALL_URING_RAW;
}

bool method_applies(enum lat_method m, enum lat_call c)
{
	switch (m) {
	case M_KILL:
		return c != CALL_COND;	/* condition waits restart */
	case M_NOP:
	case M_MSGRING:
		return is_uring(c);
	default:
		return true;
	}
}

const char *method_note(enum lat_method m)
{
	switch (m) {
	case M_EVENTFD:
		return "floor: eventfd write wakes a read() blocked on it";
	case M_KILL:
		return "pthread_kill, own handler without SA_RESTART, no library";
	case M_NOP:
		return "NOP submitted to the ring the waiter blocks on";
	case M_MSGRING:
		return "MSG_RING from the canceller's ring to the waiter's";
	case M_INTR:
		return "intr_token_cancel; the body returns, finalizers run";
	case M_HERE:
		return "the same, the body in place on the waiter's own thread (intr_run_here)";
	case M_POLL:
		return "the waiter re-checks a flag every timeout; cancel at a random point";
	case M_PCANCEL:
		return "KILLS the body: only cleanup handlers run, no clean-up by the body";
	default:
		return "";
	}
}

/* What the waiters block on, for one call's measurements. */
struct env {
	enum lat_call call;
	int pipefd[2];
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
#ifdef HAVE_LIBURING
	struct io_uring ring;		/* the waiter's */
	struct io_uring src;		/* the canceller's, for MSG_RING */
#endif
	bool ring_ok, src_ok;
	int ring_err;			/* why the waiter's ring is not ok */
};

/* One iteration. */
struct probe {
	struct env *e;
	enum lat_method m;
	pthread_t th;
	atomic_int tid;			/* the waiter, once about to block */
	atomic_int stop;		/* polling flag; set by a rescue too */
	atomic_int done;		/* the waiter is finished (peers) */
	uint64_t t_body, t_final;
	int cpu;			/* the waiter's, at t_body */
	bool stopped;			/* the waiter saw the stop */
	intr_token *tok;		/* M_HERE: the scope's */
	uint64_t t_ret;			/* M_HERE: the scope returned */
	bool locked;			/* pthread_cancel on cond: mutex held */
};

/* ------------------------------------------------------------ watchdog */
static struct {
	pthread_mutex_t mu;
	uint64_t deadline;
	unsigned ms;
	void (*rescue)(void *);
	void *arg;
	bool fired;
} watch = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void *watchdog_main(void *unused)
{
	for (;;) {
		sleep_ns(20000000);
		pthread_mutex_lock(&watch.mu);
		if (watch.deadline && now_ns() > watch.deadline) {
			if (watch.fired || !watch.rescue) {
				fprintf(stderr, "intr-latency: a wait did not end within its bound%s; giving up\n",
					watch.fired ? " even after a rescue" : "");
				_exit(1);
			}
			watch.fired = true;
			watch.rescue(watch.arg);
			watch.deadline = now_ns() + 5000000000ull;
		}
		pthread_mutex_unlock(&watch.mu);
	}
	return NULL;
}

void watchdog_start(void)
{
	sigset_t all, old;
	pthread_t th;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&th, NULL, watchdog_main, NULL) == 0)
		pthread_detach(th);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void watch_arm(unsigned ms, void (*rescue)(void *), void *arg)
{
	pthread_mutex_lock(&watch.mu);
	watch.deadline = now_ns() + (uint64_t)ms * 1000000u;
	watch.rescue = rescue;
	watch.arg = arg;
	watch.fired = false;
	pthread_mutex_unlock(&watch.mu);
}

bool watch_disarm(void)
{
	bool fired;

	pthread_mutex_lock(&watch.mu);
	watch.deadline = 0;
	fired = watch.fired;
	pthread_mutex_unlock(&watch.mu);
	return fired;
}

/* ------------------------------------------------------------ the waiters */
static void announce(struct probe *p)
{
	atomic_store(&p->tid, lat_gettid());
}

static void finished(struct probe *p)
{
	atomic_store(&p->done, 1);
	futex_wake(&p->done);
}

static void finalizer(void *arg)
{
	struct probe *p = arg;

	p->t_final = now_ns();
}

/* The library's body: block in the call under test until cancelled. */
static void *intr_body(intr_ctx *ctx, void *arg)
{
	struct probe *p = arg;
	struct env *e = p->e;
	struct pollfd pfd = { .fd = e->pipefd[0], .events = POLLIN };
	char c;
	long r;

	place_waiter(method_name[p->m]);
	intr_defer(ctx, finalizer, p);
	if (e->call == CALL_COND)
		pthread_mutex_lock(&e->mu);
	for (;;) {
		bool cancel = false;

		announce(p);
		switch (e->call) {
#ifdef HAVE_LIBURING
		case CALL_URING: {
			struct io_uring_cqe *cqe;

			r = intr_uring_wait_cqe(ctx, &e->ring, &cqe);
			if (r == 0)
				io_uring_cqe_seen(&e->ring, cqe);
			cancel = r == -ECANCELED;
			break;
		}
		case CALL_URING_RAW: {
			struct io_uring_cqe *cqe;

			r = io_uring_wait_cqe(&e->ring, &cqe);
			if (r == 0)
				io_uring_cqe_seen(&e->ring, cqe);
			cancel = r == -EINTR && intr_cancelled(ctx);
			break;
		}
#endif
		case CALL_READ:
			r = intr_read(ctx, e->pipefd[0], &c, 1);
			cancel = r == -ECANCELED;
			break;
		case CALL_READ_RAW:
			r = read(e->pipefd[0], &c, 1);
			cancel = r < 0 && errno == EINTR && intr_cancelled(ctx);
			break;
		case CALL_POLL:
			r = intr_poll(ctx, &pfd, 1, (int)(SLEEP_NS / 1000000));
			if (r > 0 && read(e->pipefd[0], &c, 1) < 0)
				r = -errno;
			cancel = r == -ECANCELED;
			break;
		case CALL_SLEEP:
			r = intr_sleep(ctx, SLEEP_NS);
			cancel = r == -ECANCELED;
			break;
		case CALL_COND:
			r = intr_cond_wait(ctx, &e->cv, &e->mu);
			cancel = r == -ECANCELED;
			break;
		default:
			r = -ENOSYS;
			break;
		}
		if (cancel) {
			p->t_body = now_ns();
			p->cpu = sched_getcpu();
			p->stopped = true;
			break;
		}
		if (atomic_load(&p->stop) || r == -ENOSYS || r == -EINVAL)
			break;
	}
	if (e->call == CALL_COND)
		pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* The waiter of M_HERE: a thread of the application's own, which runs
 * the library's body in place. */
static void *here_main(void *arg)
{
	struct probe *p = arg;

	intr_run_here(p->tok, intr_body, p, NULL);
	p->t_ret = now_ns();
	finished(p);
	return NULL;
}

static void raw_handler(int signo)
{
	(void)signo;
}

/* The peers' own signal: no SA_RESTART, so a blocked call returns EINTR. */
int raw_signal_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = raw_handler;
	sigemptyset(&sa.sa_mask);
	return sigaction(opt.raw_signo, &sa, NULL) ? -errno : 0;
}

static void pcancel_cleanup(void *arg)
{
	struct probe *p = arg;

	p->t_body = now_ns();
	p->cpu = sched_getcpu();
	p->stopped = true;
	if (p->locked)
		pthread_mutex_unlock(&p->e->mu);
}

/* The plain blocking call of class c, with a timeout for polling (0: the
 * call's own long bound).  Returns the call's result or -errno. */
static long raw_block(struct probe *p, uint64_t timeout_ns)
{
	struct env *e = p->e;
	struct pollfd pfd = { .fd = e->pipefd[0], .events = POLLIN };
	uint64_t ns = timeout_ns ? timeout_ns : SLEEP_NS;
	struct timespec ts;
	char c;
	long r;

	switch (e->call) {
#ifdef HAVE_LIBURING
	case CALL_URING:
	case CALL_URING_RAW: {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec kts = {
			.tv_sec = (long long)(ns / 1000000000u),
			.tv_nsec = (long long)(ns % 1000000000u),
		};

		if (p->m == M_PCANCEL)
			/* liburing's system call is no cancellation point. */
			pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
		if (timeout_ns)
			r = io_uring_wait_cqe_timeout(&e->ring, &cqe, &kts);
		else
			r = io_uring_wait_cqe(&e->ring, &cqe);
		if (p->m == M_PCANCEL)
			pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
		if (r == 0)
			io_uring_cqe_seen(&e->ring, cqe);
		return r;
	}
#endif
	case CALL_READ:
	case CALL_READ_RAW:
		if (timeout_ns) {
			r = poll(&pfd, 1, (int)(ns / 1000000));
			if (r <= 0)
				return r < 0 ? -errno : -ETIMEDOUT;
		}
		r = read(e->pipefd[0], &c, 1);
		return r < 0 ? -errno : r;
	case CALL_POLL:
		r = poll(&pfd, 1, (int)(ns / 1000000));
		if (r > 0 && read(e->pipefd[0], &c, 1) < 0)
			return -errno;
		return r < 0 ? -errno : r == 0 ? -ETIMEDOUT : r;
	case CALL_SLEEP:
		ts.tv_sec = (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		return -clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	case CALL_COND:
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec += (long)(ns % 1000000000u);
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		return -pthread_cond_timedwait(&e->cv, &e->mu, &ts);
	default:
		return -ENOSYS;
	}
}

/* A peer: a plain thread, no library in its path. */
static void *peer_main(void *arg)
{
	struct probe *p = arg;
	struct env *e = p->e;
	uint64_t v;
	long r;

	place_waiter(method_name[p->m]);
	switch (p->m) {
	case M_EVENTFD:
		do {
			announce(p);
			r = read(e->efd, &v, sizeof(v));
		} while (r < 0 && errno == EINTR && !atomic_load(&p->stop));
		break;
	case M_KILL:
		do {
			announce(p);
			r = raw_block(p, 0);
		} while (r != -EINTR && !atomic_load(&p->stop));
		break;
	case M_NOP:
	case M_MSGRING:
		do {
			announce(p);
			r = raw_block(p, 0);
		} while (r < 0 && !atomic_load(&p->stop));
		break;
	case M_POLL:
		if (e->call == CALL_COND)
			pthread_mutex_lock(&e->mu);
		do {
			announce(p);
			raw_block(p, (uint64_t)opt.timeout_poll_ms * 1000000u);
		} while (!atomic_load(&p->stop));
		if (e->call == CALL_COND)
			pthread_mutex_unlock(&e->mu);
		break;
	case M_PCANCEL:
		if (e->call == CALL_COND) {
			pthread_mutex_lock(&e->mu);
			p->locked = true;
		}
		pthread_cleanup_push(pcancel_cleanup, p);
		do {
			announce(p);
			r = raw_block(p, 0);
		} while (!atomic_load(&p->stop));
		pthread_cleanup_pop(0);
		if (p->locked)
			pthread_mutex_unlock(&e->mu);
		return NULL;
	default:
		break;
	}
	p->t_body = now_ns();
	p->cpu = sched_getcpu();
	p->stopped = !atomic_load(&p->stop) || p->m == M_POLL;
	finished(p);
	return NULL;
}

/* ------------------------------------------------------------ canceller */
static void drain(struct env *e)
{
	struct pollfd pfd = { .fd = e->pipefd[0], .events = POLLIN };
	uint64_t v;
	char buf[64];

	while (poll(&pfd, 1, 0) == 1 && read(e->pipefd[0], buf, sizeof(buf)) > 0)
		;
	pfd.fd = e->efd;
	if (poll(&pfd, 1, 0) == 1 && read(e->efd, &v, sizeof(v)) < 0) {
		/* cannot fail once readable */
	}
#ifdef HAVE_LIBURING
	struct io_uring_cqe *cqe;

	while (e->ring_ok && io_uring_peek_cqe(&e->ring, &cqe) == 0)
		io_uring_cqe_seen(&e->ring, cqe);
	while (e->src_ok && io_uring_peek_cqe(&e->src, &cqe) == 0)
		io_uring_cqe_seen(&e->src, cqe);
#endif
}

#ifdef HAVE_LIBURING
static int submit_nop(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_nop(sqe);
	return io_uring_submit(ring);
}
#endif

/* Make whatever the waiter blocks on ready (the watchdog's rescue). */
static void rescue(void *arg)
{
	struct probe *p = arg;
	struct env *e = p->e;
	uint64_t one = 1;

	atomic_store(&p->stop, 1);
	if (write(e->pipefd[1], "x", 1) < 0 || write(e->efd, &one, 8) < 0) {
		/* a full pipe or counter is readable anyway */
	}
#ifdef HAVE_LIBURING
	if (e->ring_ok)
		submit_nop(&e->ring);
#endif
	pthread_mutex_lock(&e->mu);
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	if (p->m == M_KILL)
		pthread_kill(p->th, opt.raw_signo);
}

/* Wait (bounded) until the waiter sleeps in a system call. */
static int wait_blocked(struct probe *p)
{
	uint64_t end = now_ns() + (uint64_t)BOUND_MS * 1000000u;
	long nr;

	do {
		pid_t tid = atomic_load(&p->tid);

		if (tid) {
			nr = blocked_syscall(tid);
			if (nr >= 0)
				return 0;
		}
		sleep_ns(10000);
	} while (now_ns() < end);
	return -ETIMEDOUT;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

struct once {
	uint64_t body, final, ret;	/* ns after t0; 0: not taken */
	int cpu_waiter, cpu_canceller;	/* where each was at the stop */
};

/* One iteration of method m.  If ir, also measure the blocked interval. */
static int run_once(struct env *e, enum lat_method m, struct once *o,
		    struct idle_result *ir)
{
	struct probe p = { .e = e, .m = m };
	intr_token *tok = NULL;
	intr_task *task = NULL;
	uint64_t t0, t1;
	int ret = 0, r = 0;
	bool fired;

	memset(o, 0, sizeof(*o));
	if (m == M_INTR) {
		r = intr_token_new(&tok, NULL);
		if (!r)
			r = intr_spawn(&task, tok, intr_body, &p);
	} else if (m == M_HERE) {
		r = intr_token_new(&tok, NULL);
		p.tok = tok;
		if (!r)
			r = -pthread_create(&p.th, NULL, here_main, &p);
	} else {
		r = -pthread_create(&p.th, NULL, peer_main, &p);
	}
	if (r) {
		fprintf(stderr, "intr-latency: %s: cannot start the waiter: %s\n",
			method_name[m], strerror(-r));
		if (tok)
			intr_token_free(tok);
		return -1;
	}

	/* Waiting for the waiter to block has its own bound; this one backs
	 * it up, and covers the idle interval. */
	watch_arm(2 * BOUND_MS + (ir ? opt.idle_ms : 0), rescue, &p);
	if (wait_blocked(&p)) {
		fprintf(stderr, "intr-latency: %s/%s: the waiter never blocked\n",
			call_name[e->call], method_name[m]);
		rescue(&p);
		ret = -1;
	}
	if (!ret && ir) {
		uint64_t c0, c1;
		long s0, s1;
		pid_t tid = atomic_load(&p.tid);

		t0 = now_ns();
		ir->ok = !thread_cost(tid, &c0, &s0);
		sleep_ns((uint64_t)opt.idle_ms * 1000000u);
		ir->ok = ir->ok && !thread_cost(tid, &c1, &s1);
		ir->interval_ns = now_ns() - t0;
		if (ir->ok) {
			ir->cpu_ns = c1 - c0;
			ir->switches = s1 - s0;
		}
	}
	if (!ret && m == M_POLL && !ir)
		sleep_ns(rng() % ((uint64_t)opt.timeout_poll_ms * 1000000u));

	/* From here, the stop itself: BOUND_MS, and the polling loop's own
	 * period on top. */
	if (!ret)
		watch_arm(BOUND_MS + (m == M_POLL ? 2 * opt.timeout_poll_ms : 0),
			  rescue, &p);
	o->cpu_canceller = sched_getcpu();
	t0 = now_ns();
	if (opt.drop && !strcmp(opt.drop, method_name[m]))
		goto wait;	/* the self-check: a lost stop */
	switch (m) {
	case M_INTR:
	case M_HERE:
		intr_token_cancel(tok);
		break;
	case M_EVENTFD: {
		uint64_t one = 1;

		if (write(e->efd, &one, sizeof(one)) < 0)
			ret = -1;
		break;
	}
	case M_KILL:
		pthread_kill(p.th, opt.raw_signo);
		break;
#ifdef HAVE_LIBURING
	case M_NOP:
		if (submit_nop(&e->ring) < 0)
			ret = -1;
		break;
	case M_MSGRING: {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&e->src);

		if (!sqe) {
			ret = -1;
			break;
		}
		io_uring_prep_msg_ring(sqe, e->ring.ring_fd, 0, 1, 0);
		if (io_uring_submit(&e->src) < 0)
			ret = -1;
		break;
	}
#endif
	case M_POLL:
		atomic_store(&p.stop, 1);
		break;
	case M_PCANCEL:
		pthread_cancel(p.th);
		break;
	default:
		ret = -1;
		break;
	}
	if (ret)
		rescue(&p);

wait:
	if (m == M_INTR) {
		intr_join(task, NULL);
	} else if (m == M_PCANCEL) {
		pthread_join(p.th, NULL);
	} else {
		while (!atomic_load(&p.done))
			futex_wait(&p.done, 0, 0);
	}
	t1 = now_ns();
	fired = watch_disarm();
	if (m != M_INTR && m != M_PCANCEL)
		pthread_join(p.th, NULL);
	if (tok)
		intr_token_free(tok);
	drain(e);
	if (fired || !p.stopped) {
		if (!ret)
			fprintf(stderr, "intr-latency: %s/%s: the stop was lost (rescued by the watchdog)\n",
				call_name[e->call], method_name[m]);
		return -1;
	}
	if (ret)
		return -1;
	o->body = p.t_body - t0;
	o->final = m == M_INTR || m == M_HERE ? p.t_final - t0 : 0;
	/* In place the scope returns on the waiter's thread. */
	o->ret = m == M_HERE ? p.t_ret - t0 : t1 - t0;
	o->cpu_waiter = p.cpu;
	return 0;
}

static int env_open(struct env *e, enum lat_call c)
{
	pthread_condattr_t ca;

	memset(e, 0, sizeof(*e));
	e->call = c;
	if (pipe2(e->pipefd, O_CLOEXEC))
		return -errno;
	e->efd = eventfd(0, EFD_CLOEXEC);
	if (e->efd < 0) {
		close(e->pipefd[0]);
		close(e->pipefd[1]);
		return -errno;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* raw_block */
	pthread_cond_init(&e->cv, &ca);
	pthread_condattr_destroy(&ca);
#ifdef HAVE_LIBURING
	if (is_uring(c) || (opt.methods & (1u << M_NOP | 1u << M_MSGRING))) {
		e->ring_err = io_uring_queue_init(8, &e->ring, 0);
		e->ring_ok = e->ring_err == 0;
		e->src_ok = e->ring_ok &&
			    io_uring_queue_init(8, &e->src, 0) == 0;
	}
#endif
	return 0;
}

static void env_close(struct env *e)
{
#ifdef HAVE_LIBURING
	if (e->src_ok)
		io_uring_queue_exit(&e->src);
	if (e->ring_ok)
		io_uring_queue_exit(&e->ring);
#endif
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	close(e->efd);
	close(e->pipefd[0]);
	close(e->pipefd[1]);
}

static bool usable(struct env *e, enum lat_method m, const char **why)
{
	*why = NULL;
	if (!method_applies(m, e->call)) {
		*why = m == M_KILL ? "n/a: condition waits restart after a signal"
				   : "n/a: needs a ring";
		return false;
	}
	if ((is_uring(e->call) || m == M_NOP) && !e->ring_ok) {
		/* Not permitted (a seccomp filter, io_uring_disabled, no
		 * io_uring in the kernel): skipped; anything else fails. */
		*why = !e->ring_err ? "skipped: built without liburing" :
		       e->ring_err == -EPERM || e->ring_err == -EACCES ||
		       e->ring_err == -ENOSYS ?
		       "skipped: io_uring not permitted here" :
		       "failed: io_uring_queue_init";
		return false;
	}
	if (m == M_MSGRING && !e->src_ok) {
		*why = "skipped: no second ring";
		return false;
	}
	return true;
}

unsigned measure_cancel(enum lat_call c)
{
	static const char *const stage[NSTAGES] = { "body", "final", "return" };
	struct series *s[NMETHODS][NSTAGES] = { { NULL } };
	struct series *floor_s[NSTAGES] = { NULL };
	unsigned failures = 0, i, n;
	const char *why;
	struct env e;
	int m, st, r;

	r = env_open(&e, c);
	if (r) {
		fprintf(stderr, "intr-latency: %s: %s\n", call_name[c], strerror(-r));
		return 1;
	}
	for (m = 0; m < NMETHODS; m++) {
		if (!(opt.methods & (1u << m)))
			continue;
		if (!usable(&e, m, &why)) {
			series_new("cancel", call_name[c], method_name[m], "-", why);
			if (!strncmp(why, "failed", 6))
				failures++;
			continue;
		}
		for (st = 0; st < NSTAGES; st++) {
			if (st == ST_FINAL && m != M_INTR && m != M_HERE)
				continue;
			s[m][st] = series_new("cancel", call_name[c],
					      method_name[m], stage[st],
					      st == ST_BODY ? method_note(m) : NULL);
			if (m == M_EVENTFD)
				floor_s[st] = s[m][st];
		}
	}
	for (m = 0; m < NMETHODS; m++)
		for (st = 0; st < NSTAGES; st++)
			if (s[m][st] && st != ST_FINAL)
				s[m][st]->floor = floor_s[st];

	/* Methods interleaved, iteration by iteration, so that noise from the
	 * rest of the machine falls on all of them alike. */
	for (i = 0; i < opt.loops; i++) {
		for (m = 0; m < NMETHODS; m++) {
			struct once o;

			if (!s[m][ST_BODY])
				continue;
			n = m == M_POLL ? opt.poll_loops : opt.loops;
			if (i >= n)
				continue;
			r = run_once(&e, m, &o, NULL);
			if (r) {
				s[m][ST_BODY]->failures++;
				failures++;
				continue;
			}
			series_add(s[m][ST_BODY], o.body);
			series_place(s[m][ST_BODY], o.cpu_waiter,
				     o.cpu_canceller);
			if (s[m][ST_FINAL])
				series_add(s[m][ST_FINAL], o.final);
			series_add(s[m][ST_RETURN], o.ret);
		}
		if (!opt.quiet && i % 100 == 99)
			progress("%s: %u/%u\r", call_name[c], i + 1, opt.loops);
	}
	env_close(&e);
	return failures;
}

int measure_idle(enum lat_call c, enum lat_method m, struct idle_result *r)
{
	const char *why;
	struct once o;
	struct env e;
	int ret;

	memset(r, 0, sizeof(*r));
	r->call = call_name[c];
	r->method = method_name[m];
	if (env_open(&e, c))
		return -1;
	if (!usable(&e, m, &why)) {
		env_close(&e);
		return 1;
	}
	ret = run_once(&e, m, &o, r);
	env_close(&e);
	return ret;
}
