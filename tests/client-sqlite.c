/* SPDX-License-Identifier: MIT */
/*
 * Description: sqlite in a body, an INSERT waiting (busy_timeout 60 s) for
 * a lock a second connection holds, and a query that runs forever, stopped
 * by the cancel; the connection usable again.
 *
 * A database file of the test's own; connection A holds BEGIN EXCLUSIVE,
 * connection B inserts in the body.  Cancels land 0-3 ms after the spawn.
 *
 *   plain idiom (tests/client-sqlite.tap, libinterruptible-libc linked):
 *     sqlite3_exec, and on failure intr_cancelled().  sqlite's busy wait
 *     sleeps between attempts and ignores how the sleep ended: the sleeps
 *     fail at once, the attempts run out, SQLITE_BUSY.
 *   busy-handler recipe (both builds): sqlite3_busy_handler() with a
 *     handler that sleeps with intr_sleep() and gives up once it reports
 *     the cancel: SQLITE_BUSY at once.
 *   interrupt recipe (both builds): a query that never waits (a recursive
 *     CTE without end) sees no signal; intr_on_cancel_repeat() with
 *     sqlite3_interrupt() ends it: SQLITE_INTERRUPT.  Repeated, because
 *     sqlite clears the interrupt when a statement starts, so one that
 *     lands just before is lost (8 bodies in 1,000 stayed in the query
 *     with a one-shot intr_on_cancel).
 *   Afterwards the connection is usable as it is: once A lets the lock go,
 *   B's INSERT goes through.
 *   without libinterruptible-libc (tests/client-sqlite-plain.tap): the
 *     plain idiom does not stop the busy wait.
 */
#include "config.h"

#include "client.h"

#ifndef HAVE_SQLITE3
int main(void)
{
	tap_skip_all("built without sqlite (Debian: libsqlite3-dev)");
}
#else
#include <sqlite3.h>

struct sq {
	struct round_body rb;
	sqlite3 *a, *b;
	atomic_int tid;
	int rc;
	int mode;		/* M_IDIOM, M_BUSY, M_LONG */
};

enum { M_IDIOM, M_BUSY, M_LONG };

static char db_dir[96], db_path[160];

static bool exec_ok(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* ------------------------------------------------------------ bodies */

static int busy(void *arg, int count)
{
	intr_ctx *ctx = arg;

	/* Retry after 1 ms, until the sleep reports the cancel. */
	return intr_sleep(ctx, 1000000) == 0;
}

static void interrupt(void *arg)
{
	sqlite3_interrupt(arg);
}

static void *body(intr_ctx *ctx, void *arg)
{
	struct sq *s = arg;

	s->rb.ran = true;
	intr_defer(ctx, round_fin, &s->rb);
	atomic_store(&s->tid, b_gettid());
	switch (s->mode) {
	case M_IDIOM:
		s->rc = sqlite3_exec(s->b, "INSERT INTO t VALUES (1)", NULL,
				     NULL, NULL);
		break;
	case M_BUSY:
		sqlite3_busy_handler(s->b, busy, ctx);
		s->rc = sqlite3_exec(s->b, "INSERT INTO t VALUES (1)", NULL,
				     NULL, NULL);
		sqlite3_busy_timeout(s->b, 60000);	/* back as it was */
		break;
	default:
		/* Repeated: sqlite forgets an interrupt that comes before
		 * the statement starts. */
		if (intr_on_cancel_repeat(ctx, interrupt, s->b)) {
			s->rc = SQLITE_INTERRUPT;	/* cancelled already */
			break;
		}
		s->rc = sqlite3_exec(s->b,
			"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
			"SELECT x + 1 FROM c) SELECT count(*) FROM c", NULL,
			NULL, NULL);
		break;
	}
	/* The README's idiom: it failed; were we cancelled? */
	s->rb.stopped = s->rc != SQLITE_OK && intr_cancelled(ctx);
	s->rb.back_ns = h_now_ns();
	return NULL;
}

/* ------------------------------------------------------------ rounds */

static void prepare(void *st)
{
	struct sq *s = st;

	if (s->mode != M_LONG && !exec_ok(s->a, "BEGIN EXCLUSIVE"))
		tap_diag("BEGIN EXCLUSIVE: %s", sqlite3_errmsg(s->a));
}

/* Nothing to repair: the statement failed and was finalized.  Once A lets
 * the lock go, B's INSERT goes through. */
static bool after(void *st, int r)
{
	struct sq *s = st;

	if (s->mode != M_LONG && !exec_ok(s->a, "COMMIT"))
		return false;
	return exec_ok(s->b, "INSERT INTO t VALUES (2)");
}

static void release(void *st)
{
	struct sq *s = st;

	sqlite3_interrupt(s->b);
	if (s->mode != M_LONG)
		exec_ok(s->a, "COMMIT");
}

static const struct round_ops ops = {
	.prepare = prepare, .body = body, .release = release, .after = after,
};

static void without_libc(struct sq *s)
{
	intr_token *tok;
	intr_task *t;
	int r;

	memset(&s->rb, 0, sizeof(s->rb));
	atomic_store(&s->tid, 0);
	s->mode = M_IDIOM;
	prepare(s);
	if (intr_token_new(&tok, NULL) || intr_spawn(&t, tok, body, s)) {
		tap_ok(false, "without libinterruptible-libc: start");
		return;
	}
	b_wait_blocked(&s->tid, CLIENT_BOUND_MS);
	intr_token_cancel(tok);
	b_sleep_ms(200);	/* re-sends at 1, 2, 4, ... 128 ms */
	tap_ok(intr_tryjoin(t, NULL) == -EBUSY,
	       "without libinterruptible-libc: the plain idiom does not stop "
	       "the busy wait (sqlite ignores how its sleeps end)");
	exec_ok(s->a, "COMMIT");	/* the lock goes: the INSERT ends */
	r = b_join_within(t, NULL, CLIENT_BOUND_MS);
	tap_ok(r == -ECANCELED && s->rc == SQLITE_OK,
	       "without libinterruptible-libc: the lock let go ends it (%d)",
	       r);
	intr_token_free(tok);
}

static void *warm_body(intr_ctx *ctx, void *arg)
{
	struct sq *s = arg;

	return exec_ok(s->b, "INSERT INTO t VALUES (0)") ? arg : NULL;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	struct round_stats st;
	struct sq s = { 0 };
	void *res = NULL;

	client_configure();
	snprintf(db_dir, sizeof(db_dir), "%s/intr-sqlite-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(db_dir))
		tap_skip_all("no scratch directory");
	snprintf(db_path, sizeof(db_path), "%s/t.db", db_dir);
	if (sqlite3_open(db_path, &s.a) != SQLITE_OK ||
	    sqlite3_open(db_path, &s.b) != SQLITE_OK ||
	    !exec_ok(s.a, "CREATE TABLE t (x)"))
		tap_skip_all("sqlite cannot open %s", db_path);
	sqlite3_busy_timeout(s.b, 60000);
	tap_diag("sqlite %s on %s; libinterruptible-libc %s",
		 sqlite3_libversion(), db_path,
		 CLIENT_LIBC ? "linked" : "not linked");
	run_interruptible(NULL, warm_body, &s, &res);
	tap_ok(res == &s, "an INSERT in a body");

	if (CLIENT_LIBC) {
		s.mode = M_IDIOM;
		rounds_run(&st, client_rounds(200), &ops, &s, &s.rb, 3000000);
		rounds_report("sqlite, plain idiom (busy wait)", &st, true,
			      64 * 1024);
	} else {
		without_libc(&s);
	}
	s.mode = M_BUSY;
	rounds_run(&st, client_rounds(200), &ops, &s, &s.rb, 3000000);
	rounds_report("sqlite, busy-handler recipe", &st, true, 64 * 1024);
	s.mode = M_LONG;
	rounds_run(&st, client_rounds(1000), &ops, &s, &s.rb, 3000000);
	rounds_report("sqlite, interrupt recipe (a query without end)", &st,
		      true, 64 * 1024);

	sqlite3_close(s.a);
	sqlite3_close(s.b);
	srv_rm(db_dir);
	return tap_done();
}
#endif
