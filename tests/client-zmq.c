/* SPDX-License-Identifier: MIT */
/*
 * Description: zeromq in a body, zmq_recv() and zmq_poll() on a PULL
 * socket nobody sends to, stopped by the cancel under the plain idiom,
 * with and without libinterruptible-libc; the socket usable afterwards.
 *
 * zeromq gives up on EINTR (zmq_recv and zmq_poll fail with it), and
 * asserts that a failed poll() failed with nothing else: with
 * libinterruptible-libc linked its first failure in a cancelled call is
 * EINTR, so zeromq keeps working as it did.  Cancels land 0-3 ms after
 * the spawn.  Afterwards a PUSH socket's message is received at once.
 */
#include "config.h"

#include "client.h"

#ifndef HAVE_LIBZMQ
int main(void)
{
	tap_skip_all("built without zeromq (Debian: libzmq3-dev)");
}
#else
#include <zmq.h>

struct zq {
	struct round_body rb;
	void *zctx, *pull, *push;
	bool poll;		/* zmq_poll, not zmq_recv */
	int r, err;
};

static void *body(intr_ctx *ctx, void *arg)
{
	struct zq *z = arg;
	char buf[16];

	z->rb.ran = true;
	intr_defer(ctx, round_fin, &z->rb);
	/* The README's idiom. */
	do {
		if (z->poll) {
			zmq_pollitem_t it = { .socket = z->pull,
					      .events = ZMQ_POLLIN };

			z->r = zmq_poll(&it, 1, -1);
		} else {
			z->r = zmq_recv(z->pull, buf, sizeof(buf), 0);
		}
		z->err = zmq_errno();
	} while (z->r < 0 && z->err == EINTR && !intr_cancelled(ctx));
	z->rb.stopped = z->r < 0 && intr_reason(ctx) != 0;
	z->rb.back_ns = h_now_ns();
	return NULL;
}

/* The socket still works: a message sent now is there at once. */
static bool after(void *st, int r)
{
	struct zq *z = st;
	zmq_pollitem_t it = { .socket = z->pull, .events = ZMQ_POLLIN };
	char buf[16];

	if (zmq_send(z->push, "ping", 4, 0) != 4 ||
	    zmq_poll(&it, 1, 5000) != 1)
		return false;
	return zmq_recv(z->pull, buf, sizeof(buf), ZMQ_DONTWAIT) == 4 &&
	       !memcmp(buf, "ping", 4);
}

static void release(void *st)
{
	struct zq *z = st;

	zmq_send(z->push, "free", 4, 0);
}

static const struct round_ops ops = {
	.body = body, .release = release, .after = after,
};

static void *warm_body(intr_ctx *ctx, void *arg)
{
	return after(arg, 0) ? arg : NULL;
}

int main(void)
{
	struct round_stats st;
	struct zq z = { 0 };
	intr_token *warm;
	void *res = NULL;
	int linger = 0;

	client_configure();
	z.zctx = zmq_ctx_new();
	z.pull = z.zctx ? zmq_socket(z.zctx, ZMQ_PULL) : NULL;
	z.push = z.zctx ? zmq_socket(z.zctx, ZMQ_PUSH) : NULL;
	if (!z.pull || !z.push || zmq_bind(z.pull, "inproc://intr-test") ||
	    zmq_connect(z.push, "inproc://intr-test"))
		tap_skip_all("zeromq refused the sockets: %s",
			     zmq_strerror(zmq_errno()));
	zmq_setsockopt(z.push, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(z.pull, ZMQ_LINGER, &linger, sizeof(linger));
	tap_diag("zeromq %d.%d.%d; libinterruptible-libc %s", ZMQ_VERSION_MAJOR,
		 ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH,
		 CLIENT_LIBC ? "linked" : "not linked");
	tap_ok(after(&z, 0), "a message outside bodies");
	/* The service threads (and their timer) start with the first token. */
	if (!intr_token_new(&warm, NULL)) {
		run_interruptible(warm, warm_body, &z, &res);
		intr_token_free(warm);
	}
	tap_ok(res == &z, "a message in a body");

	rounds_run(&st, client_rounds(200), &ops, &z, &z.rb, 3000000);
	rounds_report("zeromq, zmq_recv, plain idiom", &st, true, 64 * 1024);
	z.poll = true;
	rounds_run(&st, client_rounds(200), &ops, &z, &z.rb, 3000000);
	rounds_report("zeromq, zmq_poll, plain idiom", &st, true, 64 * 1024);

	zmq_close(z.pull);
	zmq_close(z.push);
	zmq_ctx_term(z.zctx);
	return tap_done();
}
#endif
