/* SPDX-License-Identifier: MIT */
/*
 * Tokens: the cancellation tree and its deadlines.
 *
 * Invariant (tree lock): a cancelled token has only cancelled descendants.
 * Cancelling walks the subtree once, iteratively (no recursion, no
 * allocation: it runs in signal handlers), skipping subtrees that are
 * already cancelled, and tells every call whose own token it reaches
 * (intr__call_cancel_locked) so that the call's worker is interrupted.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct intr_token *intr__deadlines;

void intr__token_init(struct intr_token *t)
{
	*t = (struct intr_token){ 0 };	/* no handle yet */
	atomic_init(&t->reason, 0);
}

void intr__token_link_locked(struct intr_token *t, struct intr_token *parent)
{
	t->parent = parent;
	if (!parent)
		return;
	t->next = parent->child;
	if (t->next)
		t->next->prev = t;
	parent->child = t;
	/* Born cancelled under a cancelled parent. */
	atomic_store(&t->reason, atomic_load(&parent->reason));
}

static void deadline_del_locked(struct intr_token *t)
{
	struct intr_token **pp;

	if (!t->deadline)
		return;
	for (pp = &intr__deadlines; *pp; pp = &(*pp)->dl_next) {
		if (*pp == t) {
			*pp = t->dl_next;
			break;
		}
	}
	t->deadline = 0;
	t->dl_next = NULL;
}

/* Take t out of the tree.  Its children, if any, become roots. */
void intr__token_unlink_locked(struct intr_token *t)
{
	struct intr_token *c, *n;

	for (c = t->child; c; c = n) {
		n = c->next;
		c->parent = NULL;
		c->next = c->prev = NULL;
	}
	t->child = NULL;
	if (t->parent) {
		if (t->prev)
			t->prev->next = t->next;
		else
			t->parent->child = t->next;
		if (t->next)
			t->next->prev = t->prev;
	}
	t->parent = t->next = t->prev = NULL;
	deadline_del_locked(t);
}

void intr__cancel_locked(struct intr_token *root, int reason)
{
	struct intr_token *t = root;

	if (atomic_load(&root->reason))
		return;
	for (;;) {
		bool descend = false;

		if (!atomic_load(&t->reason)) {
			atomic_store(&t->reason, reason);
			if (t->call)
				intr__call_cancel_locked(t->call);
			descend = t->child != NULL;
		}
		if (descend) {
			t = t->child;
			continue;
		}
		while (t != root && !t->next)
			t = t->parent;
		if (t == root)
			return;
		t = t->next;
	}
}

/* Cancel every token whose deadline has passed; return the next deadline
 * still pending, or 0. */
uint64_t intr__deadlines_fire_locked(uint64_t now)
{
	struct intr_token *t;

	while ((t = intr__deadlines) && t->deadline <= now) {
		intr__deadlines = t->dl_next;
		t->dl_next = NULL;
		t->deadline = 0;
		intr__cancel_locked(t, -ETIMEDOUT);
	}
	return intr__deadlines ? intr__deadlines->deadline : 0;
}

INTR_API int intr_token_new(intr_token **out, intr_token *parent_handle)
{
	int e = errno;
	struct intr_token *t, *parent;
	sigset_t ss;
	int ret;

	if (!out) {
		ret = -EINVAL;
		goto out;
	}
	/* The service threads: for deadlines, and to bring them back in a
	 * child after fork() (the parent's deadlines fire there too). */
	ret = intr__start();
	if (ret)
		goto out;
	t = intr__malloc(INTR_SITE_TOKEN, sizeof(*t));
	if (!t) {
		ret = -ENOMEM;
		goto out;
	}
	intr__token_init(t);

	do {
		ret = intr__handles_reserve(1);
		if (ret)
			break;
		intr__tree_lock(&ss);
		parent = intr__token_of(parent_handle);
		if (parent_handle && !parent)
			ret = -EINVAL;
		else
			ret = intr__handle_add(t, INTR_H_TOKEN, &t->handle);
		if (!ret)
			intr__token_link_locked(t, parent);
		intr__tree_unlock(&ss);
	} while (ret == -ENOSPC);

	if (ret)
		free(t);
	else
		*out = (intr_token *)t->handle;
out:
	errno = e;
	return ret;
}

INTR_API int intr_token_cancel(intr_token *handle)
{
	int e = errno;
	struct intr_token *tok;
	int ret = 0;
	sigset_t ss;

	intr__tree_lock(&ss);
	tok = intr__token_of(handle);
	if (tok)
		intr__cancel_locked(tok, -ECANCELED);
	else
		ret = -EINVAL;
	intr__tree_unlock(&ss);
	errno = e;
	return ret;
}

INTR_API int intr_token_cancel_after(intr_token *handle, uint64_t timeout_ns)
{
	int e = errno;
	struct intr_token **pp, *tok;
	uint64_t at;
	sigset_t ss;
	int ret;

	ret = intr__start();
	if (ret)
		goto out;
	at = intr__now_ns() + timeout_ns;
	if (at < timeout_ns)
		at = UINT64_MAX;	/* "never", as near as makes no odds */

	intr__tree_lock(&ss);
	tok = intr__token_of(handle);
	if (!tok) {
		ret = -EINVAL;
	} else if (atomic_load(&tok->reason)) {
		/* Already cancelled: nothing left to time. */
	} else if (!timeout_ns) {
		deadline_del_locked(tok);
		intr__cancel_locked(tok, -ETIMEDOUT);
	} else if (!tok->deadline || at < tok->deadline) {
		deadline_del_locked(tok);
		tok->deadline = at;
		for (pp = &intr__deadlines; *pp && (*pp)->deadline <= at;
		     pp = &(*pp)->dl_next)
			;
		tok->dl_next = *pp;
		*pp = tok;
		intr__timer_arm_locked(at);
	}
	intr__tree_unlock(&ss);
out:
	errno = e;
	return ret;
}

INTR_API int intr_token_reason(const intr_token *handle)
{
	int e = errno;
	struct intr_token *tok;
	sigset_t ss;
	int ret;

	intr__tree_lock(&ss);
	tok = intr__token_of(handle);
	if (tok)
		ret = atomic_load(&tok->reason);
	else
		ret = -EINVAL;
	intr__tree_unlock(&ss);
	errno = e;
	return ret;
}

INTR_API int intr_token_free(intr_token *handle)
{
	int e = errno;
	struct intr__value *values = NULL;
	struct intr_token *tok;
	sigset_t ss;
	int ret = 0;

	intr__tree_lock(&ss);
	tok = intr__token_of(handle);
	if (!tok || tok->call)
		ret = -EINVAL;	/* dead, foreign, or a call's own token */
	else if (tok->child)
		ret = -EBUSY;	/* calls or child tokens still bound */
	else {
		intr__token_unlink_locked(tok);
		intr__handle_del(tok->handle);
		values = tok->values;
	}
	intr__tree_unlock(&ss);
	if (!ret) {
		intr__values_free(values);
		free(tok);
	}
	errno = e;
	return ret;
}
