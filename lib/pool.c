/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: a provider of threads.  A worker runs one job at a
 * time (a call, for task.c), and knows of the job only its two functions;
 * between jobs it sleeps on its own futex word (bell) in the idle list,
 * and gives up after idle_ms.  Workers are created on demand, up to
 * max_workers.
 *
 * A worker puts itself back on the idle list before the job's done
 * function says its call is complete, so when run_interruptible() or
 * intr_join() returns, the next call can have that worker (a one-worker
 * pool runs call after call).
 *
 * The submitter rings the bell under the pool lock and wakes the worker
 * after letting go of it: woken under the lock, the worker, on the same
 * CPU, would run at once, find the lock held and sleep on it, two
 * context switches more per call.  The bell set under the lock is what
 * the worker goes by (it sleeps only while the bell reads 0, and clears
 * it under the lock before it looks for a job), so a wake that comes
 * late loses nothing (one that never came would leave the job to the
 * worker's idle_ms; task.c submits with every signal blocked, so no
 * handler can leave the submit before it).  The wake
 * may come after the worker has run the job, left the pool and freed its
 * record: a futex wake names an address, not an object, and every wait
 * on a futex word, here and in libc, looks again at what it waits for
 * (pthread_mutex_unlock wakes after the release the same way).
 *
 * Every worker blocks all signals but the synchronous faults whenever it
 * runs the library's code (a call's user code runs under the submitter's
 * mask, in call.c).  Threads are created with that mask already in place,
 * so no signal can reach a worker before it is ready.
 *
 * Workers are joinable, so that unloading the library can wait until none
 * runs its code.  A worker that leaves after idle_ms joins the one that
 * left before it, and becomes the one the next leaver (or the unload)
 * joins: at most one ended worker is ever waiting to be joined.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

struct worker {
	struct worker *next;		/* idle list */
	struct worker *all_next;	/* list of every worker */
	atomic_int bell;		/* 1: look for a job (set under the lock) */
	struct intr__job *job;		/* pool lock */
	pthread_t th;			/* pool lock */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct worker *idle;
static struct worker *all;		/* so a child after fork can free them */
static unsigned nworkers;		/* live worker threads */
static bool quitting;			/* intr__pool_stop: idle workers leave */
static bool have_ended;			/* ended is a worker not joined yet */
static pthread_t ended;

INTR_TLS bool intr__is_worker;
static INTR_TLS struct worker *self;

/* Take w off the list of every worker.  Pool lock. */
static void all_del(struct worker *w)
{
	struct worker **pp;

	for (pp = &all; *pp; pp = &(*pp)->all_next) {
		if (*pp == w) {
			*pp = w->all_next;
			return;
		}
	}
}

void intr__pool_lock(void)
{
	pthread_mutex_lock(&mu);
}

void intr__pool_unlock(void)
{
	pthread_mutex_unlock(&mu);
}

/* Ring w's bell: under the pool lock. */
static void bell_ring(struct worker *w)
{
	atomic_store(&w->bell, 1);
}

/* Sleep on w's bell until it rings, the absolute monotonic time ts comes
 * (true), or anything else wakes the thread; the pool lock is let go for
 * it.  A wait that fails (a filter refusing futex) counts as timed out:
 * the worker leaves instead of spinning. */
static bool bell_wait(struct worker *w, const struct timespec *ts)
{
	int r;

	atomic_store(&w->bell, 0);
	pthread_mutex_unlock(&mu);
	r = intr__futex_wait(&w->bell, 0, ts);
	pthread_mutex_lock(&mu);
	return r && r != -EAGAIN && r != -EINTR;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	pid_t tid = intr__gettid();
	struct intr__job *job;
	struct worker **pp;
	struct timespec ts;
	bool join_prev, timed_out;
	pthread_t prev;

	intr__is_worker = true;
	self = w;
	pthread_mutex_lock(&mu);
	w->th = pthread_self();
	for (;;) {
		job = w->job;
		pthread_mutex_unlock(&mu);

		job->run(job, tid);
		intr__fault_delay(INTR_DELAY_WORKER_IDLE);

		pthread_mutex_lock(&mu);
		w->job = NULL;
		w->next = idle;
		idle = w;
		pthread_mutex_unlock(&mu);

		job->done(job);

		pthread_mutex_lock(&mu);
		deadline_in(&ts, intr__cfg.idle_ms);
		timed_out = false;
		while (!w->job) {
			if (!quitting && !timed_out) {
				timed_out = bell_wait(w, &ts);
				continue;
			}
			/* Unloading: intr__pool_stop took us off the idle list
			 * and joins and frees us. */
			if (quitting) {
				pthread_mutex_unlock(&mu);
				return NULL;
			}
			/* Timed out with no work: leave the pool. */
			for (pp = &idle; *pp; pp = &(*pp)->next) {
				if (*pp == w) {
					*pp = w->next;
					break;
				}
			}
			all_del(w);
			nworkers--;
			/* The worker that left before us is joined here, and
			 * we by the next one to leave (or intr__pool_stop). */
			join_prev = have_ended;
			prev = ended;
			ended = w->th;
			have_ended = true;
			pthread_mutex_unlock(&mu);
			free(w);
			if (join_prev)
				pthread_join(prev, NULL);
			return NULL;
		}
	}
}

int intr__pool_submit(struct intr__job *job)
{
	struct worker *w;
	pthread_t th;
	int ret;

	pthread_mutex_lock(&mu);
	if (quitting) {
		pthread_mutex_unlock(&mu);
		return -EAGAIN;
	}
	w = idle;
	if (w) {
		idle = w->next;
		w->job = job;
		bell_ring(w);
		pthread_mutex_unlock(&mu);
		intr__futex_wake(&w->bell, 1);
		return 0;
	}
	if (intr__cfg.max_workers && nworkers >= intr__cfg.max_workers) {
		pthread_mutex_unlock(&mu);
		return -EAGAIN;
	}
	nworkers++;
	pthread_mutex_unlock(&mu);

	ret = -ENOMEM;
	w = intr__calloc(INTR_SITE_WORKER, 1, sizeof(*w));
	if (!w)
		goto undo;
	atomic_init(&w->bell, 0);
	w->job = job;
	pthread_mutex_lock(&mu);
	w->all_next = all;
	all = w;
	pthread_mutex_unlock(&mu);
	ret = intr__create_thread(INTR_SITE_WORKER_THREAD, worker_main, w, &th);
	if (ret)
		goto undo_all;
	return 0;

undo_all:
	pthread_mutex_lock(&mu);
	all_del(w);
	pthread_mutex_unlock(&mu);
	free(w);
undo:
	pthread_mutex_lock(&mu);
	nworkers--;
	pthread_mutex_unlock(&mu);
	return ret;
}

/* In the child after fork(): no worker thread survived, but for this one
 * if a worker forked (it goes on as the child's only worker).  The others'
 * records, idle or busy, are freed: no thread is left to use them. */
void intr__pool_after_fork(void)
{
	struct worker *w, *n;
	struct worker *keep = intr__is_worker ? self : NULL;

	/* fork_prepare took it on this very thread. */
	pthread_mutex_unlock(&mu);
	for (w = all; w; w = n) {
		n = w->all_next;
		if (w != keep)
			free(w);
	}
	idle = NULL;
	all = keep;
	if (keep)
		keep->all_next = NULL;
	nworkers = keep ? 1 : 0;
	/* The parent's threads: nothing to join here. */
	have_ended = false;
}

/*
 * Unloading (lifecycle.c): if no worker is busy, make every idle worker leave
 * and join them all; -EBUSY (and nothing changes) while a call runs.  No
 * call can start afterwards: submitting returns -EAGAIN.
 */
int intr__pool_stop(void)
{
	struct worker *list, *w;
	bool join_ended;
	pthread_t last;
	unsigned n = 0;

	pthread_mutex_lock(&mu);
	for (w = idle; w; w = w->next)
		n++;
	if (n != nworkers) {
		pthread_mutex_unlock(&mu);
		return -EBUSY;
	}
	/* Nothing is allocated here: the idle list itself is what is
	 * joined.  A worker that wakes from now on sees quitting and leaves
	 * its struct to us. */
	quitting = true;
	list = idle;
	idle = NULL;
	nworkers = 0;
	for (w = list; w; w = w->next) {
		bell_ring(w);
		intr__futex_wake(&w->bell, 1);
	}
	join_ended = have_ended;
	last = ended;
	have_ended = false;
	pthread_mutex_unlock(&mu);
	while (list) {
		w = list;
		list = w->next;
		pthread_join(w->th, NULL);
		pthread_mutex_lock(&mu);
		all_del(w);
		pthread_mutex_unlock(&mu);
		free(w);
	}
	if (join_ended)
		pthread_join(last, NULL);
	return 0;
}
