/* SPDX-License-Identifier: MIT */
/*
 * Description: hiredis in a body, BLPOP on an empty list against a real
 * redis-server, stopped by the cancel; the connection usable again.
 *
 * The test starts Debian's redis-server on 127.0.0.1 and a free port, with
 * no persistence, and stops it at the end.  Cancels land 0-3 ms after the
 * spawn: before the command left, as the server blocks the client, or
 * while it is blocked.
 *
 *   plain idiom (tests/client-redis.tap, libinterruptible-libc linked):
 *     redisCommand, and on failure intr_cancelled().  hiredis's read()
 *     fails, the context is marked broken: recipe redisReconnect() (the
 *     server forgets a client whose connection closed).
 *   CLIENT UNBLOCK recipe (both builds): intr_on_cancel_repeat() sends
 *     CLIENT UNBLOCK for the connection's id, on a second connection,
 *     until the body acknowledges (a CLIENT UNBLOCK that comes before the
 *     BLPOP is answered 0 and changes nothing), with cancellation disabled
 *     around the command when libinterruptible-libc is linked: BLPOP
 *     answers nil, and the connection is usable as it is.  1,000 early
 *     cancels: none stuck.
 *   without libinterruptible-libc (tests/client-redis-plain.tap): the
 *     plain idiom does not stop BLPOP (hiredis retries EINTR).
 */
#include "config.h"

#include "client.h"

#ifndef HAVE_HIREDIS
int main(void)
{
	tap_skip_all("built without hiredis (Debian: libhiredis-dev)");
}
#else
#include <hiredis/hiredis.h>
#include <pthread.h>

struct rd {
	struct round_body rb;
	redisContext *c;	/* the body's connection */
	redisContext *ctl;	/* CLIENT UNBLOCK, from the wake-up thread */
	long long id;		/* CLIENT ID of c */
	atomic_int wakes;
	atomic_int tid;
	bool reconnects;
};

static struct srv rs_srv;

static redisContext *rd_connect(void)
{
	struct timeval tv = { .tv_sec = 10 };

	return redisConnectWithTimeout("127.0.0.1", rs_srv.port, tv);
}

static bool ping(redisContext *c)
{
	redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
	bool ok = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");

	if (r)
		freeReplyObject(r);
	return ok;
}

static bool redis_start(void)
{
	char port[16], log[200];
	uint64_t end;

	if (access("/usr/bin/redis-server", X_OK))
		tap_skip_all("no redis-server installed (Debian: "
			     "redis-server)");
	if (!srv_dir(&rs_srv, "redis", NULL))
		tap_skip_all("no scratch directory");
	rs_srv.port = srv_free_port();
	snprintf(port, sizeof(port), "%d", rs_srv.port);
	snprintf(log, sizeof(log), "%s/redis.log", rs_srv.dir);
	{
		char *argv[] = { "/usr/bin/redis-server", "--port", port,
				 "--bind", "127.0.0.1", "--save", "",
				 "--appendonly", "no", "--dir", rs_srv.dir,
				 "--daemonize", "no", NULL };

		rs_srv.pid = srv_exec(&rs_srv, argv, false);
	}
	end = h_now_ns() + 30000000000ull;
	for (;;) {
		redisContext *c = rd_connect();
		bool ok = ping(c);

		if (c)
			redisFree(c);
		if (ok)
			return true;
		if (rs_srv.pid < 0 || waitpid(rs_srv.pid, NULL, WNOHANG) != 0 ||
		    h_now_ns() > end) {
			srv_tail(&rs_srv);
			rs_srv.pid = 0;
			srv_stop(&rs_srv, SIGTERM);
			tap_skip_all("redis-server did not start (log above)");
		}
		b_sleep_ms(20);
	}
}

static bool rd_open(struct rd *d)
{
	redisReply *r;

	d->c = rd_connect();
	d->ctl = rd_connect();
	if (!ping(d->c) || !ping(d->ctl))
		return false;
	r = redisCommand(d->c, "CLIENT ID");
	d->id = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	if (r)
		freeReplyObject(r);
	return d->id >= 0;
}

static void unblock(struct rd *d)
{
	redisReply *r = redisCommand(d->ctl, "CLIENT UNBLOCK %lld", d->id);

	if (r)
		freeReplyObject(r);
}

/* ------------------------------------------------------------ plain idiom */

static void *idiom_body(intr_ctx *ctx, void *arg)
{
	struct rd *d = arg;
	redisReply *r;

	d->rb.ran = true;
	intr_defer(ctx, round_fin, &d->rb);
	atomic_store(&d->tid, b_gettid());
	r = redisCommand(d->c, "BLPOP intr:empty 0");
	/* The README's idiom: it failed; were we cancelled? */
	d->rb.stopped = !r && intr_cancelled(ctx);
	if (r)
		freeReplyObject(r);
	d->rb.back_ns = h_now_ns();
	return NULL;
}

/* The recipe after a plain stop: hiredis marked the context broken (its
 * read failed mid-reply), and the server holds the client blocked until
 * its connection closes.  redisReconnect() closes it and makes a new one;
 * the new connection has a new id. */
static bool idiom_after(void *st, int r)
{
	struct rd *d = st;
	redisReply *rep;

	if (d->c->err) {
		if (redisReconnect(d->c) != REDIS_OK)
			return false;
		rep = redisCommand(d->c, "CLIENT ID");
		d->id = rep && rep->type == REDIS_REPLY_INTEGER ?
			rep->integer : -1;
		if (rep)
			freeReplyObject(rep);
		d->reconnects = true;
	}
	return ping(d->c);
}

static void release(void *st)
{
	unblock(st);
}

/* ------------------------------------------------------------ recipe */

static void rd_wake(void *arg)
{
	struct rd *d = arg;

	unblock(d);
	atomic_fetch_add(&d->wakes, 1);
}

static void *recipe_body(intr_ctx *ctx, void *arg)
{
	struct rd *d = arg;
	redisReply *r;
	int old;

	d->rb.ran = true;
	intr_defer(ctx, round_fin, &d->rb);
	if (intr_on_cancel_repeat(ctx, rd_wake, d)) {
		d->rb.stopped = true;	/* cancelled before the command */
		d->rb.back_ns = h_now_ns();
		return NULL;
	}
	/* hiredis must read the server's nil itself. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	r = redisCommand(d->c, "BLPOP intr:empty 0");
	pthread_setcancelstate(old, NULL);
	d->rb.stopped = intr_cancelled(ctx) && r &&
			r->type == REDIS_REPLY_NIL;
	if (r)
		freeReplyObject(r);
	d->rb.back_ns = h_now_ns();
	return NULL;
}

static bool recipe_after(void *st, int r)
{
	struct rd *d = st;

	return !d->c->err && ping(d->c);
}

static const struct round_ops idiom_ops = {
	.body = idiom_body, .release = release, .after = idiom_after,
};
static const struct round_ops recipe_ops = {
	.body = recipe_body, .release = release, .after = recipe_after,
};

/* Without libinterruptible-libc the plain idiom does not stop BLPOP. */
static void idiom_without_libc(struct rd *d)
{
	intr_token *tok;
	intr_task *t;
	int r;

	memset(&d->rb, 0, sizeof(d->rb));
	atomic_store(&d->tid, 0);
	if (intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, idiom_body, d)) {
		tap_ok(false, "without libinterruptible-libc: start");
		return;
	}
	b_wait_blocked(&d->tid, CLIENT_BOUND_MS);
	intr_token_cancel(tok);
	b_sleep_ms(200);	/* re-sends at 1, 2, 4, ... 128 ms */
	tap_ok(intr_tryjoin(t, NULL) == -EBUSY,
	       "without libinterruptible-libc: the plain idiom does not stop "
	       "BLPOP (hiredis retries EINTR)");
	unblock(d);
	r = b_join_within(t, NULL, CLIENT_BOUND_MS);
	/* The nil reply is not a failure: the idiom does not ask. */
	tap_ok(r == -ECANCELED && !d->c->err && ping(d->c),
	       "without libinterruptible-libc: CLIENT UNBLOCK from outside "
	       "ends it (%d)", r);
	intr_token_free(tok);
}

static void *warm_body(intr_ctx *ctx, void *arg)
{
	struct rd *d = arg;

	return ping(d->c) ? arg : NULL;
}

int main(void)
{
	struct round_stats st;
	struct rd d = { 0 };
	void *res = NULL;

	client_configure();
	redis_start();
	tap_diag("redis-server on 127.0.0.1:%d; libinterruptible-libc %s",
		 rs_srv.port, CLIENT_LIBC ? "linked" : "not linked");
	if (!tap_ok(rd_open(&d), "connected")) {
		srv_stop(&rs_srv, SIGTERM);
		return tap_done();
	}
	run_interruptible(NULL, warm_body, &d, &res);
	tap_ok(res == &d, "a command in a body");

	if (CLIENT_LIBC) {
		rounds_run(&st, client_rounds(200), &idiom_ops, &d, &d.rb,
			   3000000);
		rounds_report("hiredis, plain idiom", &st, true, 64 * 1024);
	} else {
		idiom_without_libc(&d);
	}
	d.reconnects = false;
	rounds_run(&st, client_rounds(CLIENT_LIBC ? 1000 : 200), &recipe_ops,
		   &d, &d.rb, 3000000);
	rounds_report("hiredis, CLIENT UNBLOCK recipe", &st, true, 64 * 1024);
	tap_ok(!d.reconnects, "hiredis, CLIENT UNBLOCK recipe: no reconnection "
	       "needed (%d CLIENT UNBLOCK sent)", atomic_load(&d.wakes));

	redisFree(d.c);
	redisFree(d.ctl);
	srv_stop(&rs_srv, SIGTERM);
	return tap_done();
}
#endif
