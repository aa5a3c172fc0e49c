/* SPDX-License-Identifier: MIT */
/*
 * The race loop shared by check-wrappers and check-uring: one race_case
 * describes a kind of race (its body and the hooks around the cancel), and
 * run_race() runs its iterations, landing the cancel before the spawn,
 * right after it, 0-50 us into the body, after the body returned, or just
 * after a release, then checks every iteration against the rules common
 * to all (check_common) and the case's own (race_case.check).
 *
 * Included after the suite has defined RESEND_US and its struct
 * race_iter, which begins with RACE_ITER_COMMON (race.h); a suite that
 * needs more than zeroed fields in a fresh iteration defines
 * RACE_ITER_INIT(it) first.
 */
#ifndef INTR_TEST_RACE_RUN_H
#define INTR_TEST_RACE_RUN_H

#ifndef RACE_ITER_INIT
#define RACE_ITER_INIT(it)	do { } while (0)
#endif

/* One kind of race test. */
struct race_case {
	const char *name;
	long iters;
	bool release;		/* W_AFTER, W_AFTER_RACE are possible */
	bool finishes;		/* released, the body finishes by itself */
	intr_fn body;
	void (*test_init)(void);
	void (*prepare)(struct race_iter *it);
	void (*spawned)(struct race_iter *it);
	void (*release_fn)(struct race_iter *it);
	void (*pre_cancel)(struct race_iter *it);	/* W_AT, W_AFTER_RACE */
	void (*check)(struct race_iter *it, struct tally *t, long i, int ret);
	void (*cleanup)(struct race_iter *it);
	void (*test_fini)(void);
};

/* The rules every iteration of every race case obeys. */
static void check_common(const struct race_case *rc, struct tally *t, long i,
			 const struct race_iter *it, int ret, void *res,
			 enum how how, uint64_t t0, uint64_t c_start,
			 uint64_t t_cancel, uint64_t dur)
{
	const struct call *a = &it->a;
	enum when w = it->w;

	t->n[w]++;
	if (ret == it->reason)
		t->cancelled[w]++;
	else if (ret == 0)
		t->completed[w]++;
	if (how == HOW_DEADLINE)
		t->deadline++;
	else if (how == HOW_TASK)
		t->by_task++;
	if (!a->ran)
		t->skipped++;
	if (dur > t->max_ns)
		t->max_ns = dur;
	if (dur > SLOW_NS)
		slow_add(&t->slows, i, t0, t0 + dur);
	if (dur > SLOW_NS && t->slow++ < MAX_REPORTS) {
		/* the timeline, in us from intr_spawn, to tell a lost signal
		 * (wrapper returned ~resend_us after the cancel) from a
		 * worker that started late */
		printf("  iteration %ld (%s, %s): the call took %" PRIu64
		       " ms; body %s, gap %" PRIu64 " us", i, when_name[w],
		       how == HOW_DEADLINE ? "deadline" : how == HOW_TASK ?
		       "task cancel" : "token cancel", dur / 1000000,
		       a->ran ? "ran" : "did not run", a->gap_ns / 1000);
		if (c_start)
			printf(", cancel %" PRId64 "..%" PRId64 " us",
			       (int64_t)(c_start - t0) / 1000,
			       (int64_t)(t_cancel - t0) / 1000);
		if (a->ran)
			printf(", body start %" PRId64 ", wrapper call %"
			       PRId64 ", body return %" PRId64 " us, last "
			       "wrapper result %ld after %ld calls",
			       (int64_t)(a->t_enter - t0) / 1000,
			       (int64_t)(a->t_call - t0) / 1000,
			       (int64_t)(a->t_ret - t0) / 1000, a->wret,
			       a->nwrap);
		printf("\n");
	}
	if (how != HOW_DEADLINE && a->t_enter && c_start &&
	    a->t_enter < c_start && t_cancel < a->t_call)
		t->in_gap++;

	if (ret != 0 && ret != it->reason) {
		bad(t, i, w, "returned %d, expected 0 or %d", ret, it->reason);
		return;
	}
	if (res != (a->ran ? (const void *)it : NULL))
		bad(t, i, w, "result %p, expected %p (body %s)", res,
		    a->ran ? (const void *)it : NULL,
		    a->ran ? "ran" : "did not run");
	if (!a->ran) {
		if (ret == 0)
			bad(t, i, w, "returned 0 but the body never ran");
	} else {
		if (a->err_what)
			bad(t, i, w, "%s returned %ld", a->err_what, a->err);
		if (a->nwrap == 0 && !a->done)
			bad(t, i, w, "the body made no wrapper call");
		if (is_reason(a->wret) && a->wret != ret)
			bad(t, i, w, "the wrapper returned %ld but the call "
			    "returned %d", a->wret, ret);
		if (ret == it->reason && !a->done && !a->woken) {
			if (a->wret == ret)
				t->by_wrapper++;
			else
				bad(t, i, w, "cancelled while the body ran, but "
				    "the wrapper did not report it: the last of "
				    "%ld calls returned %ld", a->nwrap, a->wret);
		}
		if (a->woken) {
			t->by_wake++;
			if (ret != it->reason)
				bad(t, i, w, "ended by its wake, returned %d",
				    ret);
		}
		if (ret == 0 && !a->done)
			bad(t, i, w, "returned 0 but the body did not finish "
			    "by itself");
		if (ret == 0 && t_cancel && t_cancel < a->t_ret)
			bad(t, i, w, "returned 0 but the cancel finished %"
			    PRIu64 " ns before the body returned",
			    a->t_ret - t_cancel);
	}
	switch (w) {
	case W_BEFORE:
		if (ret != it->reason || a->ran)
			bad(t, i, w, "cancelled token: returned %d, body %s",
			    ret, a->ran ? "ran" : "did not run");
		break;
	case W_RIGHT_AFTER:
	case W_AT:
		if (ret != it->reason)
			bad(t, i, w, "cancelled while blocked: returned %d", ret);
		break;
	case W_AFTER:
		if (rc->finishes && (ret != 0 || !a->done))
			bad(t, i, w, "cancel after the body returned: "
			    "returned %d", ret);
		if (!rc->finishes && ret != it->reason)
			bad(t, i, w, "cancelled while blocked (after the "
			    "data): returned %d", ret);
		break;
	default:
		break;
	}
}

static void run_race(const struct race_case *rc, bool gap_required)
{
	struct tally t;
	struct h_rng r;
	long i, unexcused;
	bool pinned;

	memset(&t, 0, sizeof(t));
	h_rng_seed(&r, rc->name);
	pinned = pin_setup();
	configure(0, RESEND_US);
	canaries_start();
	if (rc->test_init)
		rc->test_init();
	for (i = 0; i < h_scale(rc->iters); i++) {
		struct race_iter it;
		uint64_t c_start = 0, t_cancel = 0, t0, dur;
		void *res = &t;		/* must be overwritten */
		intr_token *tok;
		intr_task *task;
		enum how how;
		int ret;

		memset(&it, 0, sizeof(it));
		it.r = &r;
		it.w = pick_when(&r, rc->release);
		it.spin = h_rng_below(&r, MAX_SPIN_NS + 1);
		it.a.gap_ns = h_pick_gap(&r, MAX_GAP_NS);
		RACE_ITER_INIT(&it);
		rc->prepare(&it);	/* may change it.w */
		how = pick_how(&r, it.w);
		it.reason = how == HOW_DEADLINE ? -ETIMEDOUT : -ECANCELED;

		ck_assert_int_eq(intr_token_new(&tok, NULL), 0);
		if (it.w == W_BEFORE) {
			if (how == HOW_DEADLINE) {
				ck_assert_int_eq(intr_token_cancel_after(tok, 1),
						 0);
				wait_reason(tok, -ETIMEDOUT);
			} else {
				ck_assert_int_eq(intr_token_cancel(tok), 0);
			}
		} else if (it.w == W_AT && how == HOW_DEADLINE) {
			ck_assert_int_eq(intr_token_cancel_after(tok,
								 it.spin + 1),
					 0);
		}
		t0 = h_now_ns();
		ck_assert_int_eq(host_spawn(&task, tok, rc->body, &it), 0);
		if (rc->spawned)
			rc->spawned(&it);
		switch (it.w) {
		case W_BEFORE:
			break;
		case W_RIGHT_AFTER:
			if (how == HOW_DEADLINE) {
				ck_assert_int_eq(intr_token_cancel_after(tok, 1),
						 0);
				break;
			}
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task, how);
			break;
		case W_AT:
			if (how == HOW_DEADLINE)
				break;
			h_spin_ns(it.spin);
			if (rc->pre_cancel)
				rc->pre_cancel(&it);
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task, how);
			break;
		case W_AFTER:
			rc->release_fn(&it);
			if (rc->finishes)
				wait_done(task, i, when_name[it.w]);
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task, how);
			break;
		case W_AFTER_RACE:
			rc->release_fn(&it);
			h_spin_ns(it.spin);
			if (rc->pre_cancel)
				rc->pre_cancel(&it);
			c_start = h_now_ns();
			t_cancel = do_cancel(tok, task, how);
			break;
		default:
			break;
		}
		ret = join_bounded(task, &res, i, when_name[it.w]);
		dur = h_now_ns() - t0;
		it.t_cancel = t_cancel;
		check_common(rc, &t, i, &it, ret, res, how, t0, c_start,
			     t_cancel, dur);
		if (rc->check)
			rc->check(&it, &t, i, ret);
		ck_assert_int_eq(intr_token_free(tok), 0);
		if (rc->cleanup)
			rc->cleanup(&it);
		if (t.slow >= 2 * MAX_REPORTS) {
			/* broken: do not spend the test's timeout on it */
			printf("%s: stopping after %ld calls of more than "
			       "%llu ms\n", rc->name, t.slow,
			       SLOW_NS / 1000000);
			break;
		}
	}
	unexcused = slow_judge(rc->name, &t.slows);
	if (rc->test_fini)
		rc->test_fini();
	print_tally(rc->name, &t);
	if (pinned && gap_required && h_full_scale())
		ck_assert_msg(t.in_gap > 0,
			      "no cancel landed between the body's start and "
			      "its wrapper: the wrapper's own check was not "
			      "exercised");
	ck_assert_msg(unexcused == 0,
		      "%ld calls took more than %llu ms, %ld without a machine "
		      "stall to explain it (resend_us = %d: a cancel was "
		      "caught only by the re-send, or not at all)",
		      t.slow, SLOW_NS / 1000000, unexcused, RESEND_US);
	ck_assert_msg(t.bad == 0, "%ld iterations broke the contract "
		      "(see above)", t.bad);
}

#endif /* INTR_TEST_RACE_RUN_H */
