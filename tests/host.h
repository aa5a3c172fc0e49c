/* SPDX-License-Identifier: MIT */
/*
 * Which thread runs a test's bodies: a pool worker (intr_spawn), or a
 * thread of the test's own that runs each body in place (intr_run_here).
 * The race suites run their cases against both hosts, with the same
 * iteration counts, through these calls, which take and give intr_task *
 * values whichever host runs the call:
 *
 *   host_set(H_POOL or H_HERE)   the host of the calls spawned from now
 *   host_spawn(&t, tok, fn, arg) intr_spawn, or a call handed to a host
 *                                thread, which runs intr_run_here
 *   host_task_fd(t), host_join(t, &res), host_task_cancel(t)
 *   host_max(n)                  at most n host threads (default 64)
 *   host_join_within(t, &res, ms, fd)  host_join once t is done within
 *                                ms; else HOST_TIMEOUT, after a byte
 *                                written to fd let the body go
 *
 * A call in place is bound to a token of its own under tok, which
 * host_task_cancel cancels (the scope has no task to cancel), and which
 * its join frees.  Its intr_task * value is the address of its record:
 * the library's handles are never aligned addresses, so the two kinds are
 * told apart by the value.  Host threads are the application's, not the
 * library's: made as calls need them, and each runs call after call, so
 * what one scope leaves behind meets the next one on that thread.
 * No Check: bodies' threads use none of it, and the callers check.
 */
#ifndef INTR_TEST_HOST_H
#define INTR_TEST_HOST_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <interruptible.h>

enum h_host { H_POOL, H_HERE, H_HOSTS };

static const char *const h_host_names[H_HOSTS] = { "pool", "in place" };
static enum h_host h_host_now = H_POOL;

struct h_here_call {
	intr_fn fn;
	void *arg;
	intr_token *own;		/* the scope's token, under tok */
	void *result;
	int ret;
	int efd;			/* readable once the scope returned */
	struct h_here_call *next;
};

static pthread_mutex_t h_host_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_host_cv = PTHREAD_COND_INITIALIZER;
static struct h_here_call *h_host_queue;
static int h_host_idle, h_host_threads, h_host_max = 64;

static inline void host_set(int host)
{
	h_host_now = (enum h_host)host;
	printf("host: %s\n", h_host_names[h_host_now]);
	fflush(stdout);
}

/* At most n host threads (a test of one thread's call after call). */
static inline void host_max(int n)
{
	h_host_max = n;
}

static inline bool host_is_here(const intr_task *t)
{
	return t && ((uintptr_t)t & 7) == 0;
}

static inline void *host_main(void *p)
{
	struct h_here_call *c;
	uint64_t one = 1;

	(void)p;
	pthread_mutex_lock(&h_host_mu);
	for (;;) {
		while (!h_host_queue) {
			h_host_idle++;
			pthread_cond_wait(&h_host_cv, &h_host_mu);
			h_host_idle--;
		}
		c = h_host_queue;
		h_host_queue = c->next;
		pthread_mutex_unlock(&h_host_mu);
		c->ret = intr_run_here(c->own, c->fn, c->arg, &c->result);
		/* The write orders the result before the reader's read; the
		 * mutex, taken by the reader after it, shows that order to
		 * the checkers that know only pthread's (helgrind). */
		pthread_mutex_lock(&h_host_mu);
		if (write(c->efd, &one, sizeof(one)) != sizeof(one))
			abort();
	}
	return NULL;
}

static inline int host_spawn(intr_task **out, intr_token *tok, intr_fn fn,
			     void *arg)
{
	struct h_here_call *c, **pp;
	pthread_attr_t at;
	pthread_t th;
	int ret;

	if (h_host_now == H_POOL)
		return intr_spawn(out, tok, fn, arg);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	ret = intr_token_new(&c->own, tok);
	if (ret) {
		free(c);
		return ret;
	}
	c->fn = fn;
	c->arg = arg;
	c->efd = eventfd(0, EFD_CLOEXEC);
	if (c->efd < 0) {
		ret = -errno;
		intr_token_free(c->own);
		free(c);
		return ret;
	}
	pthread_mutex_lock(&h_host_mu);
	for (pp = &h_host_queue; *pp; pp = &(*pp)->next)
		;
	*pp = c;
	if (h_host_idle) {
		pthread_cond_signal(&h_host_cv);
	} else if (h_host_threads < h_host_max) {
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, host_main, NULL))
			abort();
		pthread_attr_destroy(&at);
		h_host_threads++;
	}
	pthread_mutex_unlock(&h_host_mu);
	*out = (intr_task *)(void *)c;
	return 0;
}

static inline int host_task_fd(intr_task *t)
{
	if (!host_is_here(t))
		return intr_task_fd(t);
	return ((struct h_here_call *)(void *)t)->efd;
}

static inline int host_task_cancel(intr_task *t)
{
	if (!host_is_here(t))
		return intr_task_cancel(t);
	return intr_token_cancel(((struct h_here_call *)(void *)t)->own);
}

/* Waits for the scope to return (bounded by the callers' poll of
 * host_task_fd first). */
static inline int host_join(intr_task *t, void **result)
{
	struct h_here_call *c = (struct h_here_call *)(void *)t;
	uint64_t v;
	int ret;

	if (!host_is_here(t))
		return intr_join(t, result);
	while (read(c->efd, &v, sizeof(v)) < 0)
		if (errno != EINTR)
			abort();
	pthread_mutex_lock(&h_host_mu);
	pthread_mutex_unlock(&h_host_mu);
	if (result)
		*result = c->result;
	ret = c->ret;
	close(c->efd);
	if (intr_token_free(c->own))
		abort();
	free(c);
	return ret;
}

#define HOST_TIMEOUT	(-10000)	/* host_join_within: not done in time */

/* Join t if it is done within ms.  If not, write a byte to release_fd
 * (what the body waits on), join it, bounded again (abort past that),
 * and return HOST_TIMEOUT. */
static inline int host_join_within(intr_task *t, void **result, unsigned ms,
				   int release_fd)
{
	struct pollfd p = { .fd = host_task_fd(t), .events = POLLIN };

	if (poll(&p, 1, (int)ms) == 1)
		return host_join(t, result);
	if (write(release_fd, "x", 1) != 1 || poll(&p, 1, (int)ms) != 1)
		abort();
	host_join(t, result);
	return HOST_TIMEOUT;
}

#endif /* INTR_TEST_HOST_H */
