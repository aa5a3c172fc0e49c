/* SPDX-License-Identifier: MIT */
/*
 * Context propagation: context elements and token values.
 *
 * Elements.  The list of elements is published as an immutable snapshot:
 * intr_context_add() copies the current one with the new element appended
 * and swaps the pointer, so a call captures with, installs with and
 * restores with the very snapshot it saw when it was submitted, whatever is
 * added meanwhile.  Snapshots are never freed (elements are added a few
 * times per process, not per call): the one a running call uses stays
 * valid, and no reference counting is needed.
 *
 * A call's captured values and its restore values live in one array
 * allocated at submit time, captured[0..n) then saved[0..n).  Which thread
 * runs what, and in what order:
 *   capture   submitting thread, in intr_spawn(), elements in order;
 *   install   worker, before the body (interrupt signal still blocked);
 *   restore   worker, after the finalizers, in reverse order;
 *   release   worker after restore, or the submitting thread when the call
 *             never reached a worker (refused, or cancelled at submit).
 * Every capture is matched by exactly one release, before the call's join
 * can return: the worker releases before it completes the task.
 *
 * Values.  A token's values are a list of (key, value) pairs set once each;
 * a look-up walks from the call's own token to the root, nearest first,
 * under the tree lock (tokens cannot be freed while they have children).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct elements {
	struct elements *older;		/* retired snapshots, kept */
	unsigned n;
	struct intr_context_element el[];
};

struct intr__value {
	struct intr__value *next;
	const void *key;
	void *value;
};

static _Atomic(struct elements *) current;
static pthread_mutex_t add_mu = PTHREAD_MUTEX_INITIALIZER;
/* The fork handlers could not be registered at load (lifecycle.c): their
 * error.  Written before main, read-only afterwards. */
static int no_fork_handlers;

INTR_API int intr_context_add(const struct intr_context_element *el)
{
	int e = errno;
	struct elements *old, *fresh;
	sigset_t all, saved;
	unsigned n;
	int ret = 0;

	if (!el || !el->capture || !el->install || !el->restore)
		return -EINVAL;
	/* Without them a fork() while add_mu is held would leave it held
	 * in the child: refused, as every call is (lifecycle.c). */
	if (no_fork_handlers)
		return -no_fork_handlers;
	/* The fork handlers (lifecycle.c, registered at load) take add_mu:
	 * a fork while another thread holds it does not leave the child's
	 * locked.  Every signal blocked while it is held: a handler that
	 * forks on this thread would wait for it forever. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	pthread_mutex_lock(&add_mu);
	old = atomic_load(&current);
	n = old ? old->n : 0;
	fresh = intr__malloc(INTR_SITE_CONTEXT_ADD,
			     sizeof(*fresh) + (n + 1) * sizeof(fresh->el[0]));
	if (!fresh) {
		ret = -ENOMEM;
		goto out;
	}
	fresh->older = old;
	fresh->n = n + 1;
	if (n)
		memcpy(fresh->el, old->el, n * sizeof(fresh->el[0]));
	fresh->el[n] = *el;
	intr__hg_before(&current);
	atomic_store(&current, fresh);
out:
	pthread_mutex_unlock(&add_mu);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	errno = e;
	return ret;
}

int intr__context_capture(struct intr_task *t)
{
	const struct elements *els = atomic_load(&current);
	unsigned i;

	intr__hg_after(&current);
	t->ctx_els = els;
	if (!els)
		return 0;
	t->ctx_vals = intr__malloc(INTR_SITE_CONTEXT_CAPTURE,
				   2 * (size_t)els->n * sizeof(void *));
	if (!t->ctx_vals) {
		t->ctx_els = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < els->n; i++)
		t->ctx_vals[i] = els->el[i].capture(els->el[i].data);
	return 0;
}

void intr__context_install(struct intr_task *t)
{
	const struct elements *els = t->ctx_els;
	unsigned i;

	if (!els)
		return;
	for (i = 0; i < els->n; i++)
		t->ctx_vals[els->n + i] =
			els->el[i].install(t->ctx_vals[i], els->el[i].data);
}

void intr__context_restore(struct intr_task *t)
{
	const struct elements *els = t->ctx_els;
	unsigned i;

	if (!els)
		return;
	for (i = els->n; i-- > 0;)
		els->el[i].restore(t->ctx_vals[els->n + i], els->el[i].data);
}

void intr__context_release(struct intr_task *t)
{
	const struct elements *els = t->ctx_els;
	unsigned i;

	if (!els)
		return;
	for (i = 0; i < els->n; i++)
		if (els->el[i].release)
			els->el[i].release(t->ctx_vals[i], els->el[i].data);
	free(t->ctx_vals);
	t->ctx_vals = NULL;
	t->ctx_els = NULL;
}

INTR_API int intr_token_set_value(intr_token *handle, const void *key,
				  void *value)
{
	int e = errno;
	struct intr__value *v, *p;
	struct intr_token *tok;
	sigset_t ss;
	int ret = 0;

	if (!key)
		return -EINVAL;
	/* Never under the tree lock. */
	v = intr__malloc(INTR_SITE_TOKEN_VALUE, sizeof(*v));
	if (!v) {
		errno = e;
		return -ENOMEM;
	}
	v->key = key;
	v->value = value;
	intr__tree_lock(&ss);
	tok = intr__token_of(handle);
	if (!tok) {
		ret = -EINVAL;
		goto unlock;
	}
	for (p = tok->values; p; p = p->next) {
		if (p->key == key) {
			ret = -EEXIST;
			goto unlock;
		}
	}
	v->next = tok->values;
	tok->values = v;
unlock:
	intr__tree_unlock(&ss);
	if (ret)
		free(v);
	errno = e;
	return ret;
}

INTR_API void *intr_ctx_value(intr_ctx *ctx, const void *key)
{
	struct intr_task *t = intr__call_of(ctx);
	struct intr_token *tok;
	struct intr__value *v;
	void *found = NULL;
	sigset_t ss;

	if (!t)
		return NULL;
	intr__tree_lock(&ss);
	for (tok = &t->tok; tok && !found; tok = tok->parent)
		for (v = tok->values; v; v = v->next)
			if (v->key == key) {
				found = v->value;
				break;
			}
	intr__tree_unlock(&ss);
	return found;
}

/* Free a list of values taken off a token (outside the tree lock). */
void intr__values_free(struct intr__value *v)
{
	struct intr__value *next;

	for (; v; v = next) {
		next = v->next;
		free(v);
	}
}

/* At load, when pthread_atfork failed with err (lifecycle.c). */
void intr__context_no_fork_handlers(int err)
{
	no_fork_handlers = err;
}

/* fork() (lifecycle.c): held across it, so the child's is consistent. */
void intr__context_fork_lock(void)
{
	pthread_mutex_lock(&add_mu);
}

void intr__context_fork_unlock(void)
{
	pthread_mutex_unlock(&add_mu);
}

void intr__context_after_fork(void)
{
	pthread_mutex_unlock(&add_mu);
}

/* Unloading (lifecycle.c), with no call running: free every snapshot. */
void intr__context_free(void)
{
	struct elements *e, *older;

	pthread_mutex_lock(&add_mu);
	e = atomic_exchange(&current, NULL);
	pthread_mutex_unlock(&add_mu);
	for (; e; e = older) {
		older = e->older;
		free(e);
	}
}
