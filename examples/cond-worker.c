/* SPDX-License-Identifier: MIT */
/*
 * cond-worker: a worker that waits on a condition variable for jobs, and
 * is stopped by cancelling its token while it waits.
 *
 * pthread_cond_wait() does not return EINTR: a signal handler runs and the
 * wait goes on, so the library's signal alone cannot reach a body blocked
 * in it.  intr_cond_wait() can be reached: on a cancel, the library
 * broadcasts the condition under the mutex, and the wait returns the
 * reason (-ECANCELED) with the mutex held, as every pthread_cond_wait()
 * returns.  No timeout, no polling: an idle worker just sleeps.
 *
 * main posts a few jobs to a small queue, waits until the worker has done
 * them all and sleeps on the empty queue, then cancels the token.
 *
 * Output: one line per job, then the jobs done, what intr_cond_wait() and
 * intr_join() returned, and whether the mutex was held on return.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <interruptible.h>

#define QLEN	8	/* queue slots */
#define NJOBS	5	/* jobs main posts */

struct queue {
	pthread_mutex_t lock;	/* protects everything below */
	pthread_cond_t nonempty;	/* main -> worker: a job was posted */
	pthread_cond_t idle;	/* worker -> main: queue empty, waiting */
	int jobs[QLEN];
	unsigned head, tail;	/* head == tail: empty */
	unsigned done;		/* jobs the worker finished */
	int waiting;		/* the worker is in intr_cond_wait() */
	/* What the body saw when it was cancelled: */
	int wait_ret;		/* intr_cond_wait()'s return */
	int unlock_ret;		/* pthread_mutex_unlock() after it */
};

static const char *reason_name(int r)
{
	switch (r) {
	case 0:
		return "0";
	case -ECANCELED:
		return "-ECANCELED";
	case -ETIMEDOUT:
		return "-ETIMEDOUT";
	default:
		return strerror(-r);
	}
}

/* The job itself: stands for real work.  Runs without the lock. */
static void process(int job)
{
	printf("worker: job %d -> %d\n", job, job * job);
}

static void *worker(intr_ctx *ctx, void *arg)
{
	struct queue *q = arg;
	int job, ret;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->head == q->tail) {
			/* Tell main we are idle, then wait.  Like
			 * pthread_cond_wait(), intr_cond_wait() releases the
			 * lock atomically as the wait begins, so main, which
			 * needs the lock to see q->waiting, cancels a worker
			 * that is really waiting.  (A cancel coming earlier
			 * would not be lost either: the wait would return
			 * the reason at once.) */
			q->waiting = 1;
			pthread_cond_broadcast(&q->idle);
			ret = intr_cond_wait(ctx, &q->nonempty, &q->lock);
			q->waiting = 0;
			if (ret == -ECANCELED || ret == -ETIMEDOUT)
				goto cancelled;	/* the lock is held */
			/* 0: a wake-up, maybe spurious: check the queue */
		}
		job = q->jobs[q->head++ % QLEN];
		pthread_mutex_unlock(&q->lock);
		process(job);
		pthread_mutex_lock(&q->lock);
		q->done++;
	}

cancelled:
	q->wait_ret = ret;
	/* The mutex is error-checking: unlocking it succeeds only if this
	 * thread holds it, so 0 here proves it was held on return. */
	q->unlock_ret = pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* main's side of the queue: plain pthread calls, main is not a body. */
static void post(struct queue *q, int job)
{
	pthread_mutex_lock(&q->lock);
	/* NJOBS <= QLEN, so the queue never fills here; a real producer
	 * would wait for room. */
	q->jobs[q->tail++ % QLEN] = job;
	pthread_cond_signal(&q->nonempty);
	pthread_mutex_unlock(&q->lock);
}

int main(void)
{
	struct queue q = { .head = 0 };
	pthread_mutexattr_t ma;
	intr_token *tok;
	intr_task *task;
	int i, ret;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&q.lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&q.nonempty, NULL);
	pthread_cond_init(&q.idle, NULL);

	ret = intr_token_new(&tok, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	ret = intr_spawn(&task, tok, worker, &q);
	if (ret) {
		fprintf(stderr, "intr_spawn: %s\n", strerror(-ret));
		return 1;
	}

	for (i = 1; i <= NJOBS; i++)
		post(&q, i);

	/* Wait until every job is done and the worker sleeps on the empty
	 * queue: what is cancelled below is a worker blocked in its wait. */
	pthread_mutex_lock(&q.lock);
	while (q.done < NJOBS || !q.waiting)
		pthread_cond_wait(&q.idle, &q.lock);
	printf("main: worker idle after %u jobs; cancelling its token\n",
	       q.done);
	pthread_mutex_unlock(&q.lock);

	intr_token_cancel(tok);
	ret = intr_join(task, NULL);

	printf("jobs done: %u\n", q.done);
	printf("intr_cond_wait returned %s\n", reason_name(q.wait_ret));
	printf("intr_join returned %s\n", reason_name(ret));
	printf("mutex held on return: %s\n", q.unlock_ret == 0 ? "yes" :
	       "no");
	intr_token_free(tok);
	pthread_cond_destroy(&q.idle);
	pthread_cond_destroy(&q.nonempty);
	pthread_mutex_destroy(&q.lock);
	return q.done == NJOBS && q.wait_ret == -ECANCELED &&
	       ret == -ECANCELED && q.unlock_ret == 0 ? 0 : 1;
}
