/* SPDX-License-Identifier: MIT */
/*
 * Tokens: the tree, cancel, deadlines, freeing, misuse and errno hygiene.
 *
 * Every wait is bounded: a deadline that never fires or a call that never
 * returns fails the test instead of hanging the suite.
 */
#include "config.h"

#include "harness.h"

#define WAIT_MS		5000	/* bound on waits for the library */
#define BODY_MS		10000	/* bound on waits inside a body */

/*
 * Poll intr_token_reason(tok) until it equals want or ms have passed.
 * Returns the last reason seen.
 */
static int wait_reason(const intr_token *tok, int want, unsigned ms)
{
	uint64_t end = h_deadline(ms);
	int reason;

	for (;;) {
		reason = intr_token_reason(tok);
		if (reason == want || h_passed(end))
			return reason;
		h_sleep_ms(1);
	}
}

/* ------------------------------------------------------------ a gated body */

/* A body that waits, bounded, until the test opens its gate. */
static void *gate_body(intr_ctx *ctx, void *arg)
{
	struct h_gate *g = arg;

	if (!h_gate_announce(g))
		return BODY_ERROR;
	return h_gate_wait(ctx, g, BODY_MS, true);
}

static void *quick_body(intr_ctx *ctx, void *arg)
{
	(void)ctx;
	return arg;
}

/* ------------------------------------------------------------ new / free */

START_TEST(test_new_free_root)
{
	intr_token *tok = NULL;

	ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
	ck_assert_ptr_nonnull(tok);
	ck_assert_int_eq(intr_token_reason(tok), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_new_free_children)
{
	intr_token *root = h_new_token(NULL);
	intr_token *a = h_new_token(root);
	intr_token *b = h_new_token(root);
	intr_token *aa = h_new_token(a);

	ck_assert_ptr_ne(a, root);
	ck_assert_ptr_ne(a, b);
	ck_assert_ptr_ne(aa, a);
	ck_assert_int_eq(intr_token_reason(a), 0);
	ck_assert_int_eq(intr_token_reason(b), 0);
	ck_assert_int_eq(intr_token_reason(aa), 0);

	ck_assert_int_eq(intr_token_free(aa), 0);
	ck_assert_int_eq(intr_token_free(a), 0);
	ck_assert_int_eq(intr_token_free(b), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
}
END_TEST

START_TEST(test_free_parent_with_child)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *child = h_new_token(parent);
	intr_token *grandchild = h_new_token(child);

	ck_assert_int_eq(intr_token_free(parent), -EBUSY);
	/* The refused free left both alive and usable. */
	ck_assert_int_eq(intr_token_reason(parent), 0);
	ck_assert_int_eq(intr_token_free(child), -EBUSY);
	ck_assert_int_eq(intr_token_reason(child), 0);

	ck_assert_int_eq(intr_token_free(grandchild), 0);
	ck_assert_int_eq(intr_token_free(parent), -EBUSY);
	ck_assert_int_eq(intr_token_free(child), 0);
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

START_TEST(test_free_parent_busy_then_cancel)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *child = h_new_token(parent);

	/* A refused free must not have detached the child. */
	ck_assert_int_eq(intr_token_free(parent), -EBUSY);
	ck_assert_int_eq(intr_token_cancel(parent), 0);
	ck_assert_int_eq(intr_token_reason(child), -ECANCELED);
	ck_assert_int_eq(intr_token_free(child), 0);
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

START_TEST(test_many_roots)
{
	enum { N = 1000 };
	static intr_token *toks[N];
	int i, j;

	for (i = 0; i < N; i++) {
		toks[i] = NULL;
		ck_assert_int_eq(intr_token_new(&toks[i], NULL), 0);
		ck_assert_ptr_nonnull(toks[i]);
	}
	/* All distinct: spot-check neighbours and the first one. */
	for (i = 1; i < N; i++) {
		ck_assert_ptr_ne(toks[i], toks[i - 1]);
		ck_assert_ptr_ne(toks[i], toks[0]);
	}
	for (j = N - 1; j >= 0; j--)
		ck_assert_int_eq(intr_token_free(toks[j]), 0);
}
END_TEST

START_TEST(test_many_new_free_cycles)
{
	int i;

	for (i = 0; i < 1000; i++) {
		intr_token *tok = NULL;

		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		ck_assert_ptr_nonnull(tok);
		ck_assert_int_eq(intr_token_reason(tok), 0);
		if (i % 2)
			ck_assert_int_eq(intr_token_cancel(tok), 0);
		ck_assert_int_eq(intr_token_free(tok), 0);
	}
}
END_TEST

START_TEST(test_many_children)
{
	enum { N = 1000 };
	static intr_token *kids[N];
	intr_token *parent = h_new_token(NULL);
	int i;

	for (i = 0; i < N; i++)
		kids[i] = h_new_token(parent);
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(intr_token_free(parent), -EBUSY);
		ck_assert_int_eq(intr_token_free(kids[i]), 0);
	}
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

/* ------------------------------------------------------------ cancel */

START_TEST(test_cancel_reason)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_reason(tok), 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_propagates_down_only)
{
	/*
	 *        root
	 *       /    \
	 *      a      s        cancel a: a, b, c, d cancelled;
	 *     / \      \       root, s and n untouched
	 *    b   b2     n
	 *    |
	 *    c
	 *    |
	 *    d
	 */
	intr_token *root = h_new_token(NULL);
	intr_token *a = h_new_token(root);
	intr_token *s = h_new_token(root);
	intr_token *n = h_new_token(s);
	intr_token *b = h_new_token(a);
	intr_token *b2 = h_new_token(a);
	intr_token *c = h_new_token(b);
	intr_token *d = h_new_token(c);

	ck_assert_int_eq(intr_token_cancel(a), 0);

	ck_assert_int_eq(intr_token_reason(a), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(b), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(b2), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(c), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(d), -ECANCELED);

	ck_assert_int_eq(intr_token_reason(root), 0);
	ck_assert_int_eq(intr_token_reason(s), 0);
	ck_assert_int_eq(intr_token_reason(n), 0);

	ck_assert_int_eq(intr_token_free(d), 0);
	ck_assert_int_eq(intr_token_free(c), 0);
	ck_assert_int_eq(intr_token_free(b2), 0);
	ck_assert_int_eq(intr_token_free(b), 0);
	ck_assert_int_eq(intr_token_free(a), 0);
	ck_assert_int_eq(intr_token_free(n), 0);
	ck_assert_int_eq(intr_token_free(s), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
}
END_TEST

START_TEST(test_cancel_middle_leaves_parent)
{
	intr_token *root = h_new_token(NULL);
	intr_token *mid = h_new_token(root);
	intr_token *leaf = h_new_token(mid);

	ck_assert_int_eq(intr_token_cancel(leaf), 0);
	ck_assert_int_eq(intr_token_reason(leaf), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(mid), 0);
	ck_assert_int_eq(intr_token_reason(root), 0);

	ck_assert_int_eq(intr_token_free(leaf), 0);
	ck_assert_int_eq(intr_token_free(mid), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
}
END_TEST

START_TEST(test_born_cancelled)
{
	intr_token *root = h_new_token(NULL);
	intr_token *kid, *grandkid;

	ck_assert_int_eq(intr_token_cancel(root), 0);
	kid = h_new_token(root);
	ck_assert_int_eq(intr_token_reason(kid), -ECANCELED);
	grandkid = h_new_token(kid);
	ck_assert_int_eq(intr_token_reason(grandkid), -ECANCELED);

	ck_assert_int_eq(intr_token_free(grandkid), 0);
	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
}
END_TEST

START_TEST(test_born_under_cancelled_ancestor)
{
	/* Cancel the root; a child of its (already cancelled) child. */
	intr_token *root = h_new_token(NULL);
	intr_token *kid = h_new_token(root);
	intr_token *late;

	ck_assert_int_eq(intr_token_cancel(root), 0);
	late = h_new_token(kid);
	ck_assert_int_eq(intr_token_reason(late), -ECANCELED);

	ck_assert_int_eq(intr_token_free(late), 0);
	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(root), 0);
}
END_TEST

START_TEST(test_cancel_idempotent)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);

	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(kid), -ECANCELED);
	/* Cancelling the already cancelled child is a no-op as well. */
	ck_assert_int_eq(intr_token_cancel(kid), 0);
	ck_assert_int_eq(intr_token_reason(kid), -ECANCELED);

	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

/* ------------------------------------------------------------ deadlines */

START_TEST(test_cancel_after_fires)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);
	intr_token *grandkid = h_new_token(kid);

	ck_assert_int_eq(intr_token_cancel_after(tok, 20 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(tok, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_reason(kid), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_reason(grandkid), -ETIMEDOUT);

	ck_assert_int_eq(intr_token_free(grandkid), 0);
	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_after_child_only)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *kid = h_new_token(parent);
	intr_token *sib = h_new_token(parent);

	ck_assert_int_eq(intr_token_cancel_after(kid, 20 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(kid, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_reason(parent), 0);
	ck_assert_int_eq(intr_token_reason(sib), 0);

	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(sib), 0);
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

START_TEST(test_born_under_timed_out)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid;

	ck_assert_int_eq(intr_token_cancel_after(tok, 0), 0);
	ck_assert_int_eq(wait_reason(tok, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	/*
	 * Born cancelled because of an ancestor's deadline: "descendants
	 * cancelled by an ancestor's deadline report -ETIMEDOUT".
	 */
	kid = h_new_token(tok);
	ck_assert_int_eq(intr_token_reason(kid), -ETIMEDOUT);

	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_after_zero)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);

	ck_assert_int_eq(intr_token_cancel_after(tok, 0), 0);
	/* "At once": no waiting allowed here. */
	ck_assert_int_eq(intr_token_reason(tok), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_reason(kid), -ETIMEDOUT);

	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_after_short_then_long)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_cancel_after(tok, 50 * 1000000ull), 0);
	ck_assert_int_eq(intr_token_cancel_after(tok, 10000 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(tok, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_after_long_then_short)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_cancel_after(tok, 10000 * 1000000ull), 0);
	ck_assert_int_eq(intr_token_cancel_after(tok, 30 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(tok, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_before_deadline)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *kid = h_new_token(tok);
	intr_token *witness = h_new_token(NULL);

	ck_assert_int_eq(intr_token_cancel_after(tok, 50 * 1000000ull), 0);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(kid), -ECANCELED);
	/* Let the deadline pass; the first reason sticks.  A deadline armed
	 * later for the same delay fires no earlier: once it has, tok's is
	 * past too, however slow the machine. */
	ck_assert_int_eq(intr_token_cancel_after(witness, 50 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(witness, -ETIMEDOUT, WAIT_MS),
			 -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(witness), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);
	ck_assert_int_eq(intr_token_reason(kid), -ECANCELED);
	/* Arming a deadline on a cancelled token changes nothing either. */
	ck_assert_int_eq(intr_token_cancel_after(tok, 0), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ECANCELED);

	ck_assert_int_eq(intr_token_free(kid), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_cancel_after_deadline_fired)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_cancel_after(tok, 0), 0);
	ck_assert_int_eq(wait_reason(tok, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	/* Already cancelled: cancel does nothing, the reason stays. */
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(tok), 0);
}
END_TEST

START_TEST(test_free_with_armed_deadline)
{
	intr_token *tok = h_new_token(NULL);
	intr_token *other = h_new_token(NULL);

	/* Freeing a token whose deadline is pending must disarm it. */
	ck_assert_int_eq(intr_token_cancel_after(tok, 20 * 1000000ull), 0);
	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_token_cancel_after(other, 40 * 1000000ull), 0);
	ck_assert_int_eq(wait_reason(other, -ETIMEDOUT, WAIT_MS), -ETIMEDOUT);
	ck_assert_int_eq(intr_token_free(other), 0);
}
END_TEST

/* ------------------------------------------------------------ misuse */

START_TEST(test_misuse_null)
{
	ck_assert_int_eq(intr_token_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(intr_token_reason(NULL), -EINVAL);
	ck_assert_int_eq(intr_token_cancel(NULL), -EINVAL);
	ck_assert_int_eq(intr_token_free(NULL), -EINVAL);
	ck_assert_int_eq(intr_token_cancel_after(NULL, 1000000), -EINVAL);
	ck_assert_int_eq(intr_token_cancel_after(NULL, 0), -EINVAL);
}
END_TEST

START_TEST(test_misuse_new_null_out_with_parent)
{
	intr_token *parent = h_new_token(NULL);

	ck_assert_int_eq(intr_token_new(NULL, parent), -EINVAL);
	/* No child was attached by the failed call. */
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

START_TEST(test_misuse_double_free)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_token_free(tok), -EINVAL);
}
END_TEST

START_TEST(test_misuse_dead_token)
{
	intr_token *tok = h_new_token(NULL);

	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_token_reason(tok), -EINVAL);
	ck_assert_int_eq(intr_token_cancel(tok), -EINVAL);
	ck_assert_int_eq(intr_token_cancel_after(tok, 1000000), -EINVAL);
}
END_TEST

START_TEST(test_misuse_freed_parent)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *kid = NULL;

	ck_assert_int_eq(intr_token_free(parent), 0);
	ck_assert_int_eq(intr_token_new(&kid, parent), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ bound calls */

START_TEST(test_free_bound_to_running_call)
{
	struct h_gate g;
	intr_token *tok = h_new_token(NULL);
	intr_task *task = NULL;
	void *res = NULL;

	h_gate_init(&g);
	ck_assert_int_eq(intr_spawn(&task, tok, gate_body, &g), 0);
	ck_assert_ptr_nonnull(task);
	h_gate_wait_up(&g, WAIT_MS);

	ck_assert_int_eq(intr_token_free(tok), -EBUSY);
	/* Still alive and not cancelled by the refused free. */
	ck_assert_int_eq(intr_token_reason(tok), 0);

	h_gate_open(&g);
	ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), 0);
	ck_assert_ptr_eq(res, BODY_RELEASED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_gate_fini(&g);
}
END_TEST

START_TEST(test_free_bound_to_cancelled_call)
{
	struct h_gate g;
	intr_token *tok = h_new_token(NULL);
	intr_task *task = NULL;
	void *res = NULL;

	h_gate_init(&g);
	ck_assert_int_eq(intr_spawn(&task, tok, gate_body, &g), 0);
	h_gate_wait_up(&g, WAIT_MS);
	ck_assert_int_eq(intr_token_cancel(tok), 0);
	ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	h_gate_fini(&g);
}
END_TEST

START_TEST(test_free_after_run_interruptible)
{
	intr_token *parent = h_new_token(NULL);
	intr_token *tok = h_new_token(parent);
	int x = 7;
	void *res = NULL;

	ck_assert_int_eq(run_interruptible(tok, quick_body, &x, &res), 0);
	ck_assert_ptr_eq(res, &x);
	/* Used only by a finished call: both can go. */
	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_token_free(parent), 0);
}
END_TEST

START_TEST(test_free_parent_of_bound_token)
{
	struct h_gate g;
	intr_token *parent = h_new_token(NULL);
	intr_token *tok = h_new_token(parent);
	intr_task *task = NULL;
	void *res = NULL;

	h_gate_init(&g);
	ck_assert_int_eq(intr_spawn(&task, tok, gate_body, &g), 0);
	h_gate_wait_up(&g, WAIT_MS);
	ck_assert_int_eq(intr_token_free(parent), -EBUSY);
	ck_assert_int_eq(intr_token_free(tok), -EBUSY);
	/* Cancelling the parent reaches the call bound to the child. */
	ck_assert_int_eq(intr_token_cancel(parent), 0);
	ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), -ECANCELED);
	ck_assert_ptr_eq(res, BODY_CANCELLED);
	ck_assert_int_eq(intr_token_free(tok), 0);
	ck_assert_int_eq(intr_token_free(parent), 0);
	h_gate_fini(&g);
}
END_TEST

/* ------------------------------------------------------------ errno */

START_TEST(test_errno_preserved)
{
	intr_token *tok = NULL, *kid = NULL, *dead = NULL, *orphan = NULL;

	CHECK_KEEPS_ERRNO(0, intr_token_new(&tok, NULL));
	CHECK_KEEPS_ERRNO(0, intr_token_new(&kid, tok));
	CHECK_KEEPS_ERRNO(0, intr_token_new(&dead, NULL));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(NULL, NULL));
	CHECK_KEEPS_ERRNO(0, intr_token_reason(tok));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_reason(NULL));
	CHECK_KEEPS_ERRNO(-EBUSY, intr_token_free(tok));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel_after(tok, 10000 * 1000000ull));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel_after(NULL, 1));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel(tok));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel(tok));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(NULL));
	CHECK_KEEPS_ERRNO(-ECANCELED, intr_token_reason(tok));
	CHECK_KEEPS_ERRNO(-ECANCELED, intr_token_reason(kid));
	CHECK_KEEPS_ERRNO(0, intr_token_free(dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_new(&orphan, dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_reason(dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_cancel(dead));
	CHECK_KEEPS_ERRNO(-EINVAL, intr_token_free(NULL));
	CHECK_KEEPS_ERRNO(0, intr_token_free(kid));
	CHECK_KEEPS_ERRNO(0, intr_token_free(tok));
}
END_TEST

START_TEST(test_errno_preserved_deadline)
{
	intr_token *tok = NULL;
	int reason;

	CHECK_KEEPS_ERRNO(0, intr_token_new(&tok, NULL));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel_after(tok, 0));
	reason = wait_reason(tok, -ETIMEDOUT, WAIT_MS);
	ck_assert_int_eq(reason, -ETIMEDOUT);
	CHECK_KEEPS_ERRNO(-ETIMEDOUT, intr_token_reason(tok));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel_after(tok, 5));
	CHECK_KEEPS_ERRNO(0, intr_token_free(tok));
}
END_TEST

START_TEST(test_errno_preserved_busy_call)
{
	struct h_gate g;
	intr_token *tok = h_new_token(NULL);
	intr_task *task = NULL;
	void *res = NULL;

	h_gate_init(&g);
	ck_assert_int_eq(intr_spawn(&task, tok, gate_body, &g), 0);
	h_gate_wait_up(&g, WAIT_MS);
	CHECK_KEEPS_ERRNO(-EBUSY, intr_token_free(tok));
	CHECK_KEEPS_ERRNO(0, intr_token_cancel(tok));
	ck_assert_int_eq(h_join_within(task, &res, WAIT_MS), -ECANCELED);
	CHECK_KEEPS_ERRNO(0, intr_token_free(tok));
	h_gate_fini(&g);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc;

	tc = h_tcase(s, "lifetime", 30);
	tcase_add_test(tc, test_new_free_root);
	tcase_add_test(tc, test_new_free_children);
	tcase_add_test(tc, test_free_parent_with_child);
	tcase_add_test(tc, test_free_parent_busy_then_cancel);
	tcase_add_test(tc, test_many_roots);
	tcase_add_test(tc, test_many_new_free_cycles);
	tcase_add_test(tc, test_many_children);

	tc = h_tcase(s, "cancel", 30);
	tcase_add_test(tc, test_cancel_reason);
	tcase_add_test(tc, test_cancel_propagates_down_only);
	tcase_add_test(tc, test_cancel_middle_leaves_parent);
	tcase_add_test(tc, test_born_cancelled);
	tcase_add_test(tc, test_born_under_cancelled_ancestor);
	tcase_add_test(tc, test_cancel_idempotent);

	tc = h_tcase(s, "deadline", 30);
	tcase_add_test(tc, test_cancel_after_fires);
	tcase_add_test(tc, test_cancel_after_child_only);
	tcase_add_test(tc, test_born_under_timed_out);
	tcase_add_test(tc, test_cancel_after_zero);
	tcase_add_test(tc, test_cancel_after_short_then_long);
	tcase_add_test(tc, test_cancel_after_long_then_short);
	tcase_add_test(tc, test_cancel_before_deadline);
	tcase_add_test(tc, test_cancel_after_deadline_fired);
	tcase_add_test(tc, test_free_with_armed_deadline);

	tc = h_tcase(s, "misuse", 30);
	tcase_add_test(tc, test_misuse_null);
	tcase_add_test(tc, test_misuse_new_null_out_with_parent);
	tcase_add_test(tc, test_misuse_double_free);
	tcase_add_test(tc, test_misuse_dead_token);
	tcase_add_test(tc, test_misuse_freed_parent);

	tc = h_tcase(s, "bound", 30);
	tcase_add_test(tc, test_free_bound_to_running_call);
	tcase_add_test(tc, test_free_bound_to_cancelled_call);
	tcase_add_test(tc, test_free_after_run_interruptible);
	tcase_add_test(tc, test_free_parent_of_bound_token);

	tc = h_tcase(s, "errno", 30);
	tcase_add_test(tc, test_errno_preserved);
	tcase_add_test(tc, test_errno_preserved_deadline);
	tcase_add_test(tc, test_errno_preserved_busy_call);

	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
