/* SPDX-License-Identifier: MIT */
/*
 * Tokens: the cancellation tree and its deadlines.  The public functions
 * are cancel.c's.
 *
 * Invariant (tree lock): a cancelled token has only cancelled descendants.
 * Cancelling walks the subtree once, iteratively (no recursion, no
 * allocation: it runs in signal handlers), skipping subtrees that are
 * already cancelled, and strings every call whose own token it reaches
 * on a list of the calls, for the caller to tell (intr__cancel_locked,
 * call.c).
 */
#include "config.h"

#include <errno.h>

#include "internal.h"

static struct intr_token *intr__deadlines;

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

/* Cancel root's subtree with reason: the reached calls, linked through
 * cx_next, or NULL.  Tree lock held. */
struct intr_task *intr__token_cancel_locked(struct intr_token *root,
					    int reason)
{
	struct intr_token *t = root;
	struct intr_task *reached = NULL;

	if (atomic_load(&root->reason))
		return NULL;
	for (;;) {
		bool descend = false;

		if (!atomic_load(&t->reason)) {
			atomic_store(&t->reason, reason);
			if (t->call) {
				t->call->cx_next = reached;
				reached = t->call;
			}
			descend = t->child != NULL;
		}
		if (descend) {
			t = t->child;
			continue;
		}
		while (t != root && !t->next)
			t = t->parent;
		if (t == root)
			return reached;
		t = t->next;
	}
}

/* Time t out at the absolute monotonic time at (0: no more): in the
 * deadline list, soonest first.  The service's timer is the caller's to
 * arm.  Tree lock held. */
void intr__deadline_set_locked(struct intr_token *t, uint64_t at)
{
	struct intr_token **pp;

	deadline_del_locked(t);
	if (!at)
		return;
	t->deadline = at;
	for (pp = &intr__deadlines; *pp && (*pp)->deadline <= at;
	     pp = &(*pp)->dl_next)
		;
	t->dl_next = *pp;
	*pp = t;
}

/* A token whose deadline has passed, taken off the list; NULL when none.
 * *next: the next deadline still pending, or 0.  Tree lock held. */
struct intr_token *intr__deadline_due_locked(uint64_t now, uint64_t *next)
{
	struct intr_token *t = intr__deadlines;

	if (t && t->deadline <= now) {
		intr__deadlines = t->dl_next;
		t->dl_next = NULL;
		t->deadline = 0;
	} else {
		t = NULL;
	}
	*next = intr__deadlines ? intr__deadlines->deadline : 0;
	return t;
}
