/* SPDX-License-Identifier: MIT */
/*
 * Tasks: submitting a call, waiting for it, and its completion fd.
 *
 * A task is registered (handles.c) from intr_spawn until its join (until
 * its worker is done with it for run_interruptible's, below), so a
 * joined task passed again is refused with -EINVAL, and so is any copy of
 * its handle afterwards: handles are never made twice.  Every entry point
 * looks the task up and uses it under the tree lock, under which the join
 * (or the worker, for run_interruptible's) also takes it out of the
 * registry before it is freed, so none uses a task a join has freed.
 *
 * Completion goes through task->done: the worker exchanges it for 1 once
 * the result and status are final, writes the eventfd if one exists,
 * wakes the joiner if one sleeps, and only then stores 2, after which it
 * never touches the task again.  A joiner that finds done 0 sets
 * INTR_DONE_WAITER beside it (a compare-and-swap from 0) before it
 * sleeps, and sleeps only while done still reads that; it frees the task
 * once it reads 2.  No wake-up is lost: either the joiner's swap comes
 * first, and the worker's exchange returns the bit and the worker wakes
 * it after changing the value it sleeps on, or the exchange comes first,
 * and the swap fails and the joiner reads 1.  So the wake-up system call
 * is made only for a joiner that sleeps, which at scale (many calls ended
 * at once, the joins trailing behind) is almost never: a wake-up of an
 * address nobody waits on still walks the kernel's futex hash bucket,
 * which ten thousand sleeping workers make long.  Between 1 and 2 there
 * is only that wake-up, if any; the joiner waits it out yielding a few
 * times, then sleeping (wait_released).  (Waking after storing 2 would
 * let a joiner free the task before the wake, which then names freed
 * memory.)  The bit is the joiner's and is seen only while a join has
 * claimed the task, which every other entry point refuses; they mask it
 * all the same.  model/join.pml checks the wake-up, model/handshake.pml
 * the eventfd.
 *
 * A join that finds the task released already (done 2, the common case
 * when it trails behind many calls ending at once) takes its handle out
 * of the registry in the same hold of the tree lock as the claim: one
 * lock and two mask changes per join instead of two and four.
 *
 * run_interruptible's task is born claimed (own_join) and its handle is
 * never handed out: the worker takes the handle out itself, in the call's
 * last step (call.c), under the lock it takes there with every signal
 * blocked anyway, before the completion, and the join takes no lock.
 * Until then a fork child finds the task by its handle and ends it, as
 * every other (end_in_child, call.c); from then to the release (done 2)
 * no one there would, and the child's only thread may be the joiner (a
 * handler that forked over it).  So the joiner says which task it waits
 * for (intr__call_await) from before the submit, when the handle is
 * still in, to the end of the join, and the child ends that one too.
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

static void task_complete(struct intr_task *t)
{
	int fd, old;

	/* A joiner's INTR_DONE_WAITER comes back here: it sleeps, or is
	 * about to, on a value this exchange has just changed. */
	old = atomic_exchange(&t->done, 1);
	/* Store then load of another variable, the other side doing the
	 * mirror image (intr_task_fd): sequentially consistent atomics order
	 * them already (on aarch64, STLR then LDAR, or SWPAL).  qemu-user
	 * translates a store-release and a load-acquire as a barrier before
	 * the store and one after the load, none between, so on an x86 host
	 * the store can wait in the store buffer while the load reads an old
	 * fd, and neither side writes the fd.  The fence (DMB ISH, a full
	 * barrier there) rules that out whatever the exchange compiles to;
	 * see model/handshake.pml. */
	atomic_thread_fence(memory_order_seq_cst);
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		fd_signal(fd);
	if (old & INTR_DONE_WAITER)
		intr__futex_wake(&t->done, INT_MAX);
	intr__fault_delay(INTR_DELAY_COMPLETE);
	intr__hg_before(&t->done);
	atomic_store(&t->done, 2);	/* the last touch of t */
}

/* The pool's job of a task: its call, run on the worker; then, the
 * worker idle again, its completion. */
static void job_run(struct intr__job *job, pid_t tid)
{
	intr__call_run(intr__container_of(job, struct intr_task, job), tid);
}

static void job_done(struct intr__job *job)
{
	task_complete(intr__container_of(job, struct intr_task, job));
}

/* Register t and its own token, and bind that token under the token
 * handle names (none if NULL).  -EINVAL for a dead handle, -ENOSPC if the
 * registry needs to grow first. */
static int bind_locked(struct intr_task *t, intr_token *handle)
{
	struct intr_token *tok = intr__token_of(handle);
	int ret;

	if (handle && !tok)
		return -EINVAL;
	ret = intr__handle_add(t, INTR_H_TASK, &t->handle);
	if (ret)
		return ret;
	ret = intr__handle_add(&t->tok, INTR_H_TOKEN, &t->tok.handle);
	if (ret) {
		intr__handle_del(t->handle);
		return ret;
	}
	/* The ctx: the task's count, of another kind. */
	t->ctx = (t->handle & ~INTR_H_KIND_MASK) | INTR_H_CTX;
	intr__token_link_locked(&t->tok, tok);
	return 0;
}

/* Start a call: *tp is the task and *hp its handle, taken before the call
 * is submitted (after that, only a join may touch the task, and it is the
 * caller's to make).  claimed: the caller joins it itself, and the task is
 * born claimed, so that no join or intr_task_fd() can take it through a
 * value it never handed out. */
static int spawn(struct intr_task **tp, uintptr_t *hp, intr_token *tok,
		 intr_fn fn, void *arg, bool claimed)
{
	struct intr_task *t;
	bool skipped = false;
	sigset_t ss;
	int ret;

	if (!fn)
		return -EINVAL;
	ret = intr__start();
	if (ret)
		return ret;
	t = intr__calloc(INTR_SITE_TASK, 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fn = fn;
	t->arg = arg;
	t->job.run = job_run;
	t->job.done = job_done;
	t->joining = claimed;
	t->own_join = claimed;
	t->state = INTR_QUEUED;
	atomic_init(&t->done, 0);
	atomic_init(&t->fd, -1);
	t->wake_fd = -1;
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
			intr__handle_del(t->tok.handle);
			if (claimed)
				intr__handle_del(t->handle);
			skipped = true;
		}
		if (ret)
			intr__tree_unlock(&ss);
	} while (ret == -ENOSPC);
	if (ret)
		goto release;
	/* Bound, every signal stays blocked to the end of the submit: a
	 * handler that forked in between would have a child that ends the
	 * call (by its handle, as a call of the parent's), then submits it
	 * to a worker of its own while its join frees it.  The same two
	 * mask changes as a lock section of its own. */
	intr__tree_unlock_blocked();
	*tp = t;
	*hp = t->handle;
	/* Awaited from here, before the worker can take the handle out. */
	if (claimed)
		intr__call_await(t);
	if (skipped) {
		pthread_sigmask(SIG_SETMASK, &ss, NULL);
		intr__context_release(t);
		task_complete(t);
		return 0;
	}
	ret = intr__pool_submit(&t->job);
	if (!ret) {
		pthread_sigmask(SIG_SETMASK, &ss, NULL);
		return 0;
	}

	if (claimed)
		intr__call_await_end(t);
	intr__tree_lock_blocked();
	intr__token_unlink_locked(&t->tok);
	intr__handle_del(t->tok.handle);
	intr__handle_del(t->handle);
	intr__tree_unlock(&ss);
release:
	intr__context_release(t);
free_task:
	free(t);
	return ret;
}

INTR_API int intr_spawn(intr_task **out, intr_token *tok, intr_fn fn, void *arg)
{
	int e = errno;
	struct intr_task *t;
	uintptr_t h;
	int ret = -EINVAL;

	if (out) {
		ret = spawn(&t, &h, tok, fn, arg, false);
		if (!ret)
			*out = (intr_task *)h;
	}
	errno = e;
	return ret;
}

/* Claim the task handle names for joining; *tp is the task.  -EINVAL if
 * it is not a live task, another join has it, or it is the call running on
 * this thread or one a scope on it runs inside of (its body or a finalizer
 * joining itself would wait forever);
 * -EBUSY if only_if_done and the call is still running.  *released: the
 * worker had let go of the task already, and its handle is gone (no entry
 * point reaches it any more, and nothing is left to wait for). */
static int claim(intr_task *handle, bool only_if_done, struct intr_task **tp,
		 bool *released)
{
	struct intr_task *t;
	sigset_t ss;
	int ret = 0, done;

	*released = false;
	intr__tree_lock(&ss);
	t = intr__task_of(handle);
	if (!t || intr__call_on_thread(t) || t->joining) {
		ret = -EINVAL;
		goto unlock;
	}
	done = atomic_load(&t->done) & INTR_DONE_MASK;
	if (only_if_done && done == 0) {
		ret = -EBUSY;
		goto unlock;
	}
	t->joining = true;
	if (done == 2) {
		intr__handle_del(t->handle);
		*released = true;
	}
unlock:
	intr__tree_unlock(&ss);
	*tp = t;
	return ret;
}

/*
 * done is 1: the worker is writing the eventfd or in the wake-up call of
 * this very joiner, and stores 2 right after, with no wake-up of its own
 * (a joiner that slept was woken by that call).  Yielding lets it run,
 * unless this thread has the higher priority (a SCHED_FIFO joiner on the
 * worker's CPU, woken by that very call, preempts the worker before its
 * store: yielding then spins until the kernel throttles real-time
 * threads, about 0.95 s).  So after a few yields, sleep: 10 us, doubling
 * up to 1 ms, each ended early if done has already changed.
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

/*
 * Wait until the worker has let go of t (done 2).  First a couple of
 * yields: a worker woken on this CPU that did not run at once (the
 * scheduler lets the waker go on) then runs the call to its end and goes
 * to sleep, and this thread finds it released, two context switches in
 * all.  Asleep at once instead, this thread would be woken by the
 * completion, take the CPU from the worker before its release, and give
 * it back to wait for it: four.  A worker on another CPU, or a long body,
 * costs the two yields and the sleep follows.
 */
#define JOIN_YIELDS 2

static void wait_done(struct intr_task *t)
{
	int done, zero, i;

	for (i = 0; i < JOIN_YIELDS &&
		    !(atomic_load(&t->done) & INTR_DONE_MASK); i++)
		sched_yield();
	/* The wait is not interrupted for good by a signal: the futex wait
	 * returns EINTR and the loop waits again. */
	while (!((done = atomic_load(&t->done)) & INTR_DONE_MASK)) {
		/* Say that a joiner sleeps before sleeping: the worker wakes
		 * only then.  A failed swap means the worker's exchange came
		 * first (done is 1 or 2 now), or the bit is set already. */
		zero = 0;
		if (done == 0 &&
		    !atomic_compare_exchange_strong(&t->done, &zero,
						    INTR_DONE_WAITER))
			continue;
		intr__futex_wait(&t->done, INTR_DONE_WAITER, NULL);
	}
	wait_released(t);
}

/* released: claim() found t let go of and took its handle out. */
static int finish_join(struct intr_task *t, void **result, bool released)
{
	sigset_t ss;
	int ret, fd;

	if (!released) {
		/* run_interruptible's spawn said so already. */
		if (!t->own_join)
			intr__call_await(t);
		wait_done(t);
		intr__call_await_end(t);
		/* The worker's writes to t came before its release. */
		intr__hg_after(&t->done);
	}
	if (!released && !t->own_join) {
		/* From here no entry point can reach t (they look it up
		 * under the lock), and its handle is never made again. */
		intr__tree_lock(&ss);
		intr__handle_del(t->handle);
		intr__tree_unlock(&ss);
	}

	if (result)
		*result = t->result;
	ret = t->status;
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		close(fd);
	free(t);
	return ret;
}

INTR_API int intr_join(intr_task *handle, void **result)
{
	int e = errno;
	struct intr_task *t;
	bool released;
	int ret;

	ret = claim(handle, false, &t, &released);
	if (!ret)
		ret = finish_join(t, result, released);
	errno = e;
	return ret;
}

INTR_API int intr_tryjoin(intr_task *handle, void **result)
{
	int e = errno;
	struct intr_task *t;
	bool released;
	int ret;

	ret = claim(handle, true, &t, &released);
	if (!ret)
		ret = finish_join(t, result, released);
	errno = e;
	return ret;
}

INTR_API int intr_task_cancel(intr_task *handle)
{
	int e = errno;
	struct intr_task *t;
	sigset_t ss;
	int ret = 0;

	intr__tree_lock(&ss);
	t = intr__task_of(handle);
	if (t)
		intr__cancel_locked(&t->tok, -ECANCELED);
	else
		ret = -EINVAL;
	intr__tree_unlock(&ss);
	errno = e;
	return ret;
}

/* The whole of it under the tree lock, the eventfd's creation included (a
 * system call, but no allocation of ours): a join claims the task, and
 * takes it out of the registry before freeing it, under the same lock, so
 * either this is refused or the join finds the fd in the task and closes
 * it. */
INTR_API int intr_task_fd(intr_task *handle)
{
	int e = errno;
	struct intr_task *t;
	sigset_t ss;
	int fd;

	intr__tree_lock(&ss);
	t = intr__task_of(handle);
	if (!t || t->joining) {
		fd = -EINVAL;
		goto unlock;
	}
	fd = atomic_load(&t->fd);
	if (fd >= 0)
		goto unlock;
	if (intr__fault(INTR_SITE_EVENTFD)) {
		fd = -1;
		errno = EMFILE;
	} else {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	if (fd < 0) {
		fd = -errno;
		goto unlock;
	}
	atomic_store(&t->fd, fd);
	/* The worker reads t->fd after storing done = 1, and this thread
	 * reads done after storing t->fd (task_complete): at least
	 * one of the two sees the other and makes fd readable. */
	atomic_thread_fence(memory_order_seq_cst);	/* see above */
	if (atomic_load(&t->done) & INTR_DONE_MASK)
		fd_signal(fd);
unlock:
	intr__tree_unlock(&ss);
	errno = e;
	return fd;
}

INTR_API int run_interruptible(intr_token *tok, intr_fn fn, void *arg,
			       void **result)
{
	int e = errno;
	struct intr_task *t;
	uintptr_t h;
	int ret;

	/* Born claimed: the join is this one. */
	ret = spawn(&t, &h, tok, fn, arg, true);
	if (!ret)
		ret = finish_join(t, result, false);
	errno = e;
	return ret;
}
