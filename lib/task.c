/* SPDX-License-Identifier: MIT */
/*
 * Tasks: submitting a call, waiting for it, and its completion fd.
 *
 * A task is registered (handles.c) from intr_spawn until its join, so a
 * joined task passed again is refused with -EINVAL.  Completion goes
 * through task->done: the worker stores 1 once the result and status are
 * final, writes the eventfd if one exists, wakes the joiners, and only
 * then stores 2, after which it never touches the task again.  A joiner
 * sleeps while done is 0 and frees the task once it reads 2; between 1 and
 * 2 there is only the wake-up system call, which it waits out yielding a
 * few times, then sleeping (wait_released).  (Waking after storing 2
 * would let a joiner free the task before the wake, which then names
 * freed memory.)
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static void fd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN at a counter near 2^64 is possible: the fd
		 * is readable then anyway. */
	}
}

void intr__task_complete(struct intr_task *t)
{
	int fd;

	atomic_store(&t->done, 1);
	/* Store then load of another variable, the other side doing the
	 * mirror image (intr_task_fd): sequentially consistent atomics order
	 * them already (on aarch64, STLR then LDAR).  qemu-user translates
	 * those as a barrier before the store and one after the load, none
	 * between, so on an x86 host the store can wait in the store buffer
	 * while the load reads an old fd, and neither side writes the fd.
	 * The fence (DMB ISH, a full barrier there) rules that out; see
	 * model/handshake.pml. */
	atomic_thread_fence(memory_order_seq_cst);
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		fd_signal(fd);
	intr__futex_wake(&t->done, INT_MAX);
	atomic_store(&t->done, 2);	/* the last touch of t */
}

/* Register t and its own token, and bind that token under tok.  -EINVAL
 * for a dead tok, -ENOSPC if the registry needs to grow first. */
static int bind_locked(struct intr_task *t, struct intr_token *tok)
{
	int ret;

	if (tok && !intr__handle_live(tok, INTR_H_TOKEN))
		return -EINVAL;
	ret = intr__handle_add(t, INTR_H_TASK);
	if (ret)
		return ret;
	ret = intr__handle_add(&t->tok, INTR_H_TOKEN);
	if (ret) {
		intr__handle_del(t);
		return ret;
	}
	intr__token_link_locked(&t->tok, tok);
	return 0;
}

INTR_API int intr_spawn(intr_task **out, intr_token *tok, intr_fn fn, void *arg)
{
	int e = errno;
	struct intr_task *t;
	bool skipped = false;
	sigset_t ss;
	int ret;

	if (!out || !fn) {
		ret = -EINVAL;
		goto out;
	}
	ret = intr__service_start();
	if (ret)
		goto out;
	/* An application may have installed its own handler over ours. */
	intr__signal_check();
	t = intr__calloc(INTR_SITE_TASK, 1, sizeof(*t));
	if (!t) {
		ret = -ENOMEM;
		goto out;
	}
	t->fn = fn;
	t->arg = arg;
	t->state = INTR_QUEUED;
	atomic_init(&t->done, 0);
	atomic_init(&t->fd, -1);
	atomic_init(&t->acked, false);
	atomic_init(&t->wake_busy, 0);
	intr__token_init(&t->tok);
	t->tok.call = t;
	ret = intr__context_capture(t);
	if (ret)
		goto free_task;

	do {
		ret = intr__handles_reserve(2);
		if (ret)
			goto release;
		intr__tree_lock(&ss);
		/* ss is the submitter's mask: the body runs under it. */
		intr__call_set_mask(t, &ss);
		ret = bind_locked(t, tok);
		if (!ret && atomic_load(&t->tok.reason)) {
			/* Cancelled already: the body will not run, so no
			 * worker is needed; the join returns the reason. */
			t->state = INTR_DONE;
			t->status = atomic_load(&t->tok.reason);
			intr__token_unlink_locked(&t->tok);
			intr__handle_del(&t->tok);
			skipped = true;
		}
		intr__tree_unlock(&ss);
	} while (ret == -ENOSPC);
	if (ret)
		goto release;
	if (skipped) {
		intr__context_release(t);
		intr__task_complete(t);
		*out = t;
		goto out;
	}

	ret = intr__pool_submit(t);
	if (ret)
		goto unbind;
	*out = t;
	goto out;

unbind:
	intr__tree_lock(&ss);
	intr__token_unlink_locked(&t->tok);
	intr__handle_del(&t->tok);
	intr__handle_del(t);
	intr__tree_unlock(&ss);
release:
	intr__context_release(t);
free_task:
	free(t);
out:
	errno = e;
	return ret;
}

/* Claim t for joining.  -EINVAL if it is not a live task, another join
 * has it, or it is the call running on this thread (its body or a
 * finalizer joining itself would wait forever); -EBUSY if only_if_done
 * and the call is still running. */
static int claim(struct intr_task *t, bool only_if_done)
{
	sigset_t ss;
	int ret = 0;

	if (!t || t == intr__current)
		return -EINVAL;
	intr__tree_lock(&ss);
	if (!intr__handle_live(t, INTR_H_TASK) || t->joining)
		ret = -EINVAL;
	else if (only_if_done && atomic_load(&t->done) == 0)
		ret = -EBUSY;
	else
		t->joining = true;
	intr__tree_unlock(&ss);
	return ret;
}

/*
 * done is 1: the worker is in its wake-up call and stores 2 right after,
 * with no wake-up of its own.  Yielding lets it run, unless this thread
 * has the higher priority (a SCHED_FIFO joiner on the worker's CPU, woken
 * by that very call, preempts the worker before its store: yielding then
 * spins until the kernel throttles real-time threads, about 0.95 s).  So
 * after a few yields, sleep: 10 us, doubling up to 1 ms, each ended early
 * if done has already changed.
 */
static void wait_released(struct intr_task *t)
{
	uint64_t gap = 10000, at;
	struct timespec ts;
	int i;

	for (i = 0; atomic_load(&t->done) != 2; i++) {
		if (i < 4) {
			sched_yield();
			continue;
		}
		at = intr__now_ns() + gap;
		ts.tv_sec = (time_t)(at / 1000000000u);
		ts.tv_nsec = (long)(at % 1000000000u);
		intr__futex_wait(&t->done, 1, &ts);
		if (gap < 1000000)
			gap *= 2;
	}
}

static int finish_join(struct intr_task *t, void **result)
{
	sigset_t ss;
	int ret, fd;

	/* The wait is not interrupted for good by a signal: the futex wait
	 * returns EINTR and the loop waits again. */
	while (atomic_load(&t->done) == 0)
		intr__futex_wait(&t->done, 0, NULL);
	wait_released(t);

	intr__tree_lock(&ss);
	intr__handle_del(t);
	intr__tree_unlock(&ss);

	if (result)
		*result = t->result;
	ret = t->status;
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		close(fd);
	free(t);
	return ret;
}

INTR_API int intr_join(intr_task *t, void **result)
{
	int e = errno;
	int ret;

	ret = claim(t, false);
	if (!ret)
		ret = finish_join(t, result);
	errno = e;
	return ret;
}

INTR_API int intr_tryjoin(intr_task *t, void **result)
{
	int e = errno;
	int ret;

	ret = claim(t, true);
	if (!ret)
		ret = finish_join(t, result);
	errno = e;
	return ret;
}

INTR_API int intr_task_cancel(intr_task *t)
{
	int e = errno;
	sigset_t ss;
	int ret = 0;

	intr__tree_lock(&ss);
	if (intr__handle_live(t, INTR_H_TASK))
		intr__cancel_locked(&t->tok, -ECANCELED);
	else
		ret = -EINVAL;
	intr__tree_unlock(&ss);
	errno = e;
	return ret;
}

INTR_API int intr_task_fd(intr_task *t)
{
	int e = errno;
	int fd, none = -1;
	sigset_t ss;
	bool live;

	intr__tree_lock(&ss);
	live = intr__handle_live(t, INTR_H_TASK) && !t->joining;
	intr__tree_unlock(&ss);
	if (!live) {
		fd = -EINVAL;
		goto out;
	}
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		goto out;
	if (intr__fault(INTR_SITE_EVENTFD)) {
		fd = -1;
		errno = EMFILE;
	} else {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	if (fd < 0) {
		fd = -errno;
		goto out;
	}
	if (!atomic_compare_exchange_strong(&t->fd, &none, fd)) {
		close(fd);
		fd = none;
		goto out;
	}
	/* The worker reads t->fd after storing done = 1, and this thread
	 * reads done after storing t->fd (intr__task_complete): at least
	 * one of the two sees the other and makes fd readable. */
	atomic_thread_fence(memory_order_seq_cst);	/* see above */
	if (atomic_load(&t->done) >= 1)
		fd_signal(fd);
out:
	errno = e;
	return fd;
}

INTR_API int run_interruptible(intr_token *tok, intr_fn fn, void *arg,
			       void **result)
{
	intr_task *t;
	int ret;

	int e;

	ret = intr_spawn(&t, tok, fn, arg);
	if (ret)
		return ret;
	/* No claim: t was never handed out, so no other join can have it,
	 * and it is not the call running on this thread. */
	e = errno;
	ret = finish_join(t, result);
	errno = e;
	return ret;
}
