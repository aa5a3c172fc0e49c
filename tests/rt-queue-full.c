/* SPDX-License-Identifier: MIT */
/*
 * Description: a real-time interrupt signal and a full signal queue
 * (RLIMIT_SIGPENDING): the send fails with EAGAIN; the library must try it
 * again until it goes through, without waiting for the re-send interval,
 * and wake-up actions must not wait for it at all.
 *
 * resend_us is 10 s, so a cancel that reaches its body sooner than that
 * was carried by the first send or by the retry of a failed one.  The
 * queue is made full by a soft limit of 0 queued signals, then given room
 * again; the body must be back within JOIN_MS of that.  While the queue
 * stays full, the retries' gaps double up to 100 ms and no further.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "bound.h"
#include "tap.h"

#define JOIN_MS		3000
#define RESEND_US	10000000u

struct blk {
	int fds[2];
	atomic_int tid;
	pthread_mutex_t m;
	pthread_cond_t c;
};

static void *wrapped_read(intr_ctx *ctx, void *arg)
{
	struct blk *b = arg;
	char c;

	atomic_store(&b->tid, b_gettid());
	return (void *)(long)intr_read(ctx, b->fds[0], &c, 1);
}

static void *plain_read(intr_ctx *ctx, void *arg)
{
	struct blk *b = arg;
	char c;

	atomic_store(&b->tid, b_gettid());
	while (!intr_cancelled(ctx))
		if (read(b->fds[0], &c, 1) == 1)
			return (void *)1L;
	return (void *)(long)-ECANCELED;
}

static void *cond_wait(intr_ctx *ctx, void *arg)
{
	struct blk *b = arg;
	int ret;

	pthread_mutex_lock(&b->m);
	atomic_store(&b->tid, b_gettid());
	do
		ret = intr_cond_wait(ctx, &b->c, &b->m);
	while (!ret);
	pthread_mutex_unlock(&b->m);
	return (void *)(long)ret;
}

static struct rlimit saved;

static void queue_full(bool full)
{
	struct rlimit rl = saved;

	if (full)
		rl.rlim_cur = 0;
	setrlimit(RLIMIT_SIGPENDING, &rl);
}

/* Start fn blocked, fill the queue, cancel; then give the queue room
 * again unless the body must come back with it full (a wake-up action). */
static void one(const char *what, intr_fn fn, bool back_while_full)
{
	struct blk b;
	intr_token *tok;
	intr_task *t;
	void *res = NULL;
	int ret;

	memset(&b, 0, sizeof(b));
	atomic_init(&b.tid, 0);
	pthread_mutex_init(&b.m, NULL);
	pthread_cond_init(&b.c, NULL);
	if (pipe(b.fds) || intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, fn, &b)) {
		tap_ok(false, "%s: set-up", what);
		return;
	}
	if (!b_wait_atomic(&b.tid, 1, JOIN_MS) ||
	    !b_thread_sleeps(atomic_load(&b.tid), JOIN_MS)) {
		tap_ok(false, "%s: the body did not block", what);
		return;
	}
	queue_full(true);
	intr_token_cancel(tok);
	if (!back_while_full) {
		/* Nothing can carry the cancel while the queue is full. */
		tap_ok(b_readable_within(intr_task_fd(t), 50) == 0,
		       "%s: still blocked while the queue is full", what);
		queue_full(false);
	}
	ret = b_join_within(t, &res, JOIN_MS);
	queue_full(false);
	tap_ok(ret == -ECANCELED && (long)res == -ECANCELED,
	       "%s: back with -ECANCELED within %d ms of the queue %s "
	       "(join %d, body %ld)", what, JOIN_MS,
	       back_while_full ? "being full" : "having room", ret,
	       (long)res);
	if (ret == B_TIMEOUT) {
		/* Let it go, so that the process can end. */
		if (write(b.fds[1], "x", 1) == 1)
			b_join_within(t, NULL, 2 * RESEND_US / 1000);
	}
	intr_token_free(tok);
	close(b.fds[0]);
	close(b.fds[1]);
}

/* ---------------------------------------- the retry gap's cap */

#define CAP_NS		100000000ull	/* "doubling up to 100 ms" */
#define WATCH_MS	1500		/* 1, 2, 4 ... then capped gaps */

/* The library's service timer (a timerfd), or -1. */
static int service_timerfd(void)
{
	char path[64], link[64];
	ssize_t n;
	int fd;

	for (fd = 3; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strcmp(link, "anon_inode:[timerfd]"))
			return fd;
	}
	return -1;
}

/* How long until the timer fires (it_value in its fdinfo), in ns; -1 if
 * it cannot be read. */
static int64_t timer_left_ns(int fd)
{
	char path[64], buf[512], *p;
	long long sec, nsec;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, "it_value: (");
	if (!p || sscanf(p, "it_value: (%lld, %lld)", &sec, &nsec) != 2)
		return -1;
	return sec * 1000000000ll + nsec;
}

/* While the queue stays full, the failed send is retried at doubling
 * gaps: the service timer is never armed further ahead than the cap.
 * What the timer has left is at most the gap it was armed with, however
 * late this thread looks, so the bound holds under any load. */
static void gap_cap(void)
{
	struct blk b;
	intr_token *tok;
	intr_task *t;
	int64_t left, most = -1;
	uint64_t end;
	int tfd, ret, samples = 0;

	memset(&b, 0, sizeof(b));
	atomic_init(&b.tid, 0);
	if (pipe(b.fds) || intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, wrapped_read, &b)) {
		tap_ok(false, "gap cap: set-up");
		return;
	}
	tfd = service_timerfd();
	if (tfd < 0 || !b_wait_atomic(&b.tid, 1, JOIN_MS) ||
	    !b_thread_sleeps(atomic_load(&b.tid), JOIN_MS)) {
		tap_ok(false, "gap cap: set-up (timerfd %d)", tfd);
		return;
	}
	queue_full(true);
	intr_token_cancel(tok);
	end = h_now_ns() + WATCH_MS * 1000000ull;
	while (h_now_ns() < end) {
		left = timer_left_ns(tfd);
		if (left > most)
			most = left;
		samples++;
		b_sleep_ms(1);
	}
	queue_full(false);
	ret = b_join_within(t, NULL, JOIN_MS);
	tap_ok(most >= 0 && (uint64_t)most <= CAP_NS,
	       "gap cap: a refused send is retried at most 100 ms apart "
	       "(longest timer seen %.1f ms, %d looks)", (double)most / 1e6,
	       samples);
	tap_ok(ret == -ECANCELED, "gap cap: back once the queue has room "
	       "(join %d)", ret);
	if (ret == B_TIMEOUT && write(b.fds[1], "x", 1) == 1)
		b_join_within(t, NULL, 2 * RESEND_US / 1000);
	intr_token_free(tok);
	close(b.fds[0]);
	close(b.fds[1]);
}

int main(void)
{
	struct intr_config cfg;

	if (RUNNING_ON_VALGRIND)
		tap_skip_all("valgrind queues every signal itself");
	if (getrlimit(RLIMIT_SIGPENDING, &saved))
		tap_skip_all("getrlimit: %s", strerror(errno));
	intr_config_default(&cfg);
	cfg.signo = SIGRTMIN + 3;
	cfg.resend_us = RESEND_US;
	if (intr_configure(&cfg))
		tap_skip_all("intr_configure refused RTMIN+3");
	one("intr_read", wrapped_read, false);
	one("plain read()", plain_read, false);
	one("intr_cond_wait", cond_wait, true);
	gap_cap();
	return tap_done();
}
