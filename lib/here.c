/* SPDX-License-Identifier: MIT */
/*
 * The in-place scope: intr_run_here() runs a body on the calling thread,
 * which is interruptible for as long as the body runs.
 *
 * The call lives in this function's frame and goes through the same life
 * as a pooled one (call.c), with the caller's thread as its host: the
 * same states, the same sends under the tree lock, the same handler.
 * What differs is the mask: a worker blocks every signal between bodies,
 * the caller's thread keeps its own, so the scope opens the interrupt
 * signal for the body, blocks it again after if the caller had it
 * blocked, and absorbs every signal sent for the call before it returns
 * (call.c, "In place").  Nothing is allocated but what context elements
 * capture; the call's own token is registered as a handle only if the
 * body asks for it (intr_ctx_token).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "internal.h"

/* Bind t's own token under the token handle names (a root if NULL), and
 * make its ctx.  -EINVAL for a dead handle.  Bound, the thread goes on
 * with every signal blocked to the start's section, which finds the
 * caller's mask in t->mask (held): only the library's code runs between
 * the two, and the pair costs the two mask changes of one. */
static int bind_here(struct intr_task *t, intr_token *handle)
{
	struct intr_token *parent;
	sigset_t ss;

	intr__tree_lock(&ss);
	parent = intr__token_of(handle);
	if (handle && !parent) {
		intr__tree_unlock(&ss);
		return -EINVAL;
	}
	t->ctx = intr__handle_make(INTR_H_CTX);
	intr__token_link_locked(&t->tok, parent);
	t->mask = ss;
	t->held = true;
	intr__tree_unlock_blocked();
	return 0;
}

int intr__here_token(struct intr_task *t)
{
	int e = errno;
	sigset_t ss;
	int ret;

	do {
		ret = intr__handles_reserve(1);
		if (ret)
			break;
		intr__tree_lock(&ss);
		ret = intr__handle_add(&t->tok, INTR_H_TOKEN, &t->tok.handle);
		intr__tree_unlock(&ss);
	} while (ret == -ENOSPC);
	errno = e;
	return ret;
}

INTR_API int intr_run_here(intr_token *tok, intr_fn fn, void *arg,
			   void **result)
{
	int e = errno;
	struct intr_task t;
	int ret;

	if (!fn) {
		ret = -EINVAL;
		goto out;
	}
	/* Counted in, so that the unload leaves the runtime in place. */
	ret = intr__scope_enter();
	if (ret)
		goto out;
	ret = intr__start();
	if (ret)
		goto leave;
	memset(&t, 0, sizeof(t));
	t.host = INTR_HOST_HERE;
	t.fn = fn;
	t.arg = arg;
	t.state = INTR_QUEUED;
	t.wake_fd = -1;
	atomic_init(&t.done, 0);
	atomic_init(&t.fd, -1);
	atomic_init(&t.acked, false);
	atomic_init(&t.sent, false);
	atomic_init(&t.wake_busy, 0);
	atomic_init(&t.wslot, INTR_WS_NONE);
	intr__token_init(&t.tok);
	t.tok.call = &t;
	ret = intr__context_capture(&t);
	if (ret)
		goto leave;
	ret = bind_here(&t, tok);
	if (ret) {
		intr__context_release(&t);
		goto leave;
	}
	intr__call_run(&t, intr__call_tid());
	if (result)
		*result = t.result;
	ret = t.status;
leave:
	intr__scope_leave();
out:
	errno = e;
	return ret;
}
