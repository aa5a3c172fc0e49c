/* SPDX-License-Identifier: MIT */
/*
 * Description: libpq in a body, PQexec("SELECT pg_sleep(60)") against a
 * real PostgreSQL, stopped by the cancel; the connection usable again.
 *
 * The test starts Debian's PostgreSQL (initdb, then postgres on a private
 * socket directory and a free port, as the postgres user when run as
 * root) and stops it at the end.  Cancels land 0-3 ms after the spawn:
 * before the query left, as the server starts it, or while it sleeps.
 *
 *   plain idiom (tests/client-pq.tap, libinterruptible-libc linked):
 *     PQexec, and on failure intr_cancelled().  libpq's poll() fails, the
 *     query's reply is never read: recipe PQreset(), then
 *     pg_terminate_backend() of the old backend on the new connection.
 *   PQcancel recipe (both builds): intr_on_cancel_repeat() sends
 *     PQcancel() until the body acknowledges, with cancellation disabled
 *     around PQexec when libinterruptible-libc is linked, so that libpq
 *     reads the server's answer (SQLSTATE 57014): the connection is in
 *     step and usable as it is.  1,000 early cancels: none stuck.
 *   without libinterruptible-libc (tests/client-pq-plain.tap): the plain
 *     idiom does not stop PQexec (libpq retries EINTR).
 */
#include "config.h"

#include "client.h"

#ifndef HAVE_LIBPQ
int main(void)
{
	tap_skip_all("built without libpq (Debian: libpq-dev)");
}
#else
#include <libpq-fe.h>
#include <pthread.h>

struct pq {
	struct round_body rb;
	char conninfo[256];
	PGconn *conn;
	PGcancel *cancel;
	atomic_int wakes;
	atomic_int tid;
	bool resets;		/* the recipe needed none */
};

static struct srv pg;

static bool pg_start(void)
{
	char initdb[128], postgres[128], data[160], port[16];
	const char *user = getuid() == 0 ? "postgres" : NULL;
	uint64_t end;

	if (!srv_find("/usr/lib/postgresql/*/bin/initdb", initdb,
		      sizeof(initdb)) ||
	    !srv_find("/usr/lib/postgresql/*/bin/postgres", postgres,
		      sizeof(postgres)))
		tap_skip_all("no PostgreSQL server installed (Debian: "
			     "postgresql)");
	if (user && !getpwnam(user))
		tap_skip_all("running as root and no postgres user to run "
			     "the server as");
	if (!srv_dir(&pg, "pg", user))
		tap_skip_all("no scratch directory");
	snprintf(data, sizeof(data), "%s/data", pg.dir);
	{
		char *argv[] = { initdb, "-D", data, "-A", "trust", "-U", "intr",
				 "-E", "UTF8", "--locale=C", "--no-sync",
				 NULL };

		if (srv_exec(&pg, argv, true)) {
			srv_tail(&pg);
			srv_stop(&pg, SIGTERM);
			tap_skip_all("initdb failed (log above)");
		}
	}
	pg.port = srv_free_port();
	snprintf(port, sizeof(port), "%d", pg.port);
	{
		char *argv[] = { postgres, "-D", data, "-k", pg.dir, "-p", port,
				 "-c", "listen_addresses=", "-c", "fsync=off",
				 "-c", "max_connections=50", NULL };

		pg.pid = srv_exec(&pg, argv, false);
	}
	end = h_now_ns() + 60000000000ull;
	for (;;) {
		char ci[256];

		snprintf(ci, sizeof(ci), "host=%s port=%d user=intr "
			 "dbname=postgres", pg.dir, pg.port);
		if (PQping(ci) == PQPING_OK)
			return true;
		if (pg.pid < 0 || waitpid(pg.pid, NULL, WNOHANG) != 0 ||
		    h_now_ns() > end) {
			srv_tail(&pg);
			pg.pid = 0;
			srv_stop(&pg, SIGTERM);
			tap_skip_all("postgres did not start (log above)");
		}
		b_sleep_ms(50);
	}
}

static int complaints;

static bool select1(struct pq *q)
{
	PGresult *res = PQexec(q->conn, "SELECT 1");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
		  !strcmp(PQgetvalue(res, 0, 0), "1");

	if (!ok && complaints++ < 3)
		tap_diag("SELECT 1: %s", PQerrorMessage(q->conn));
	PQclear(res);
	return ok;
}

/* pg_terminate_backend() of a backend that ended already warns. */
static void quiet(void *arg, const char *message)
{
}

static bool pq_connect(struct pq *q)
{
	snprintf(q->conninfo, sizeof(q->conninfo), "host=%s port=%d "
		 "user=intr dbname=postgres", pg.dir, pg.port);
	q->conn = PQconnectdb(q->conninfo);
	if (PQstatus(q->conn) != CONNECTION_OK)
		return false;
	PQsetNoticeProcessor(q->conn, quiet, NULL);
	q->cancel = PQgetCancel(q->conn);
	return q->cancel && select1(q);
}

static void pq_close(struct pq *q)
{
	PQfreeCancel(q->cancel);
	PQfinish(q->conn);
}

static void pq_cancel_now(struct pq *q)
{
	char err[256];

	PQcancel(q->cancel, err, sizeof(err));
}

/* ------------------------------------------------------------ plain idiom */

static void *idiom_body(intr_ctx *ctx, void *arg)
{
	struct pq *q = arg;
	PGresult *res;

	q->rb.ran = true;
	intr_defer(ctx, round_fin, &q->rb);
	atomic_store(&q->tid, b_gettid());
	res = PQexec(q->conn, "SELECT pg_sleep(60)");
	/* The README's idiom: it failed; were we cancelled? */
	q->rb.stopped = PQresultStatus(res) != PGRES_TUPLES_OK &&
			intr_cancelled(ctx);
	PQclear(res);
	q->rb.back_ns = h_now_ns();
	return NULL;
}

/* The recipe after a plain stop: libpq gave up before the server's reply,
 * so the connection is out of step, and the statement may still run: a
 * PQcancel() that reaches the server before the statement started is
 * dropped.  PQreset() makes a new connection; on it,
 * pg_terminate_backend() ends the old one's backend, running or not. */
static bool idiom_after(void *st, int r)
{
	struct pq *q = st;
	char sql[64];
	PGresult *res;
	int old;

	if (q->rb.ran) {
		old = PQbackendPID(q->conn);
		PQreset(q->conn);
		if (PQstatus(q->conn) != CONNECTION_OK) {
			if (complaints++ < 3)
				tap_diag("PQreset: %s", PQerrorMessage(q->conn));
			return false;
		}
		snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)",
			 old);
		res = PQexec(q->conn, sql);
		PQclear(res);
		PQfreeCancel(q->cancel);
		q->cancel = PQgetCancel(q->conn);
		q->resets = true;
	}
	return PQstatus(q->conn) == CONNECTION_OK && select1(q);
}

static void release(void *st)
{
	pq_cancel_now(st);
}

/* ------------------------------------------------------------ recipe */

static void pq_wake(void *arg)
{
	struct pq *q = arg;

	pq_cancel_now(q);
	atomic_fetch_add(&q->wakes, 1);
}

static void *recipe_body(intr_ctx *ctx, void *arg)
{
	struct pq *q = arg;
	PGresult *res;
	const char *state;
	int old;

	q->rb.ran = true;
	intr_defer(ctx, round_fin, &q->rb);
	if (intr_on_cancel_repeat(ctx, pq_wake, q)) {
		q->rb.stopped = true;	/* cancelled before the query */
		q->rb.back_ns = h_now_ns();
		return NULL;
	}
	/* libpq must read the server's answer to the cancel itself. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	res = PQexec(q->conn, "SELECT pg_sleep(60)");
	pthread_setcancelstate(old, NULL);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	q->rb.stopped = intr_cancelled(ctx) &&
			PQresultStatus(res) == PGRES_FATAL_ERROR && state &&
			!strcmp(state, "57014");	/* query_canceled */
	PQclear(res);
	q->rb.back_ns = h_now_ns();
	return NULL;
}

/* The recipe leaves the connection as it was: no reset. */
static bool recipe_after(void *st, int r)
{
	struct pq *q = st;

	return PQstatus(q->conn) == CONNECTION_OK && select1(q);
}

static const struct round_ops idiom_ops = {
	.body = idiom_body, .release = release, .after = idiom_after,
};
static const struct round_ops recipe_ops = {
	.body = recipe_body, .release = release, .after = recipe_after,
};

/* ------------------------------------------------------------ without */

/* Without libinterruptible-libc the plain idiom does not stop PQexec:
 * after a cancel and 200 ms of re-sent signals the body still waits, until
 * the test cancels the query itself. */
static void idiom_without_libc(struct pq *q)
{
	intr_token *tok;
	intr_task *t;
	int r;

	memset(&q->rb, 0, sizeof(q->rb));
	atomic_store(&q->tid, 0);
	if (intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, idiom_body, q)) {
		tap_ok(false, "without libinterruptible-libc: start");
		return;
	}
	b_wait_blocked(&q->tid, CLIENT_BOUND_MS);
	intr_token_cancel(tok);
	b_sleep_ms(200);	/* re-sends at 1, 2, 4, ... 128 ms */
	tap_ok(intr_tryjoin(t, NULL) == -EBUSY,
	       "without libinterruptible-libc: the plain idiom does not stop "
	       "PQexec (libpq retries EINTR)");
	pq_cancel_now(q);
	r = b_join_within(t, NULL, CLIENT_BOUND_MS);
	tap_ok(r == -ECANCELED && q->rb.stopped,
	       "without libinterruptible-libc: PQcancel from outside ends it "
	       "(%d)", r);
	intr_token_free(tok);
}

static void *warm_body(intr_ctx *ctx, void *arg)
{
	return select1(arg) ? arg : NULL;
}

int main(void)
{
	struct round_stats rs;
	struct pq q = { 0 };
	void *res = NULL;
	int n = client_rounds(200);

	client_configure();
	pg_start();
	tap_diag("PostgreSQL on %s, port %d; libinterruptible-libc %s", pg.dir,
		 pg.port, CLIENT_LIBC ? "linked" : "not linked");
	if (!pq_connect(&q)) {
		tap_ok(false, "connected: %s", PQerrorMessage(q.conn));
		srv_stop(&pg, SIGINT);
		return tap_done();
	}
	tap_ok(true, "connected");
	/* The pool, the service threads and libpq's own first-use state. */
	run_interruptible(NULL, warm_body, &q, &res);
	tap_ok(res == &q, "a query in a body");

	if (CLIENT_LIBC) {
		rounds_run(&rs, n, &idiom_ops, &q, &q.rb, 3000000);
		rounds_report("libpq, plain idiom", &rs, true, 64 * 1024);
	} else {
		idiom_without_libc(&q);
	}
	q.resets = false;
	rounds_run(&rs, client_rounds(CLIENT_LIBC ? 1000 : 200), &recipe_ops,
		   &q, &q.rb, 3000000);
	rounds_report("libpq, PQcancel recipe", &rs, true, 64 * 1024);
	tap_ok(!q.resets, "libpq, PQcancel recipe: no reconnection needed "
	       "(%d PQcancel sent)", atomic_load(&q.wakes));

	pq_close(&q);
	srv_stop(&pg, SIGINT);
	return tap_done();
}
#endif
