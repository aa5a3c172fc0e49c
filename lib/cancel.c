/* SPDX-License-Identifier: MIT */
/*
 * The tokens' functions for the application: make one, cancel it now or
 * at a deadline, read its reason, free it.  The tree and its deadlines
 * are token.c's; telling the calls a cancel reaches is call.c's.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

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
	struct intr_token *tok;
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
		intr__deadline_set_locked(tok, 0);
		intr__cancel_locked(tok, -ETIMEDOUT);
	} else if (!tok->deadline || at < tok->deadline) {
		intr__deadline_set_locked(tok, at);
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
