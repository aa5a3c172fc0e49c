/* SPDX-License-Identifier: MIT */
/*
 * accept-server: an accept() loop on 127.0.0.1, stopped by Ctrl-C.
 *
 * A body owns the listening socket and loops on intr_accept(): each
 * connection gets a one-line reply and is closed.  No polling timeout:
 * while nobody connects, the worker sleeps in accept().  SIGINT's handler
 * cancels the token; intr_accept() returns -ECANCELED at once, the body
 * returns, its finalizer closes the listening socket, and the program
 * prints how many connections it served and exits 0.
 *
 * usage: accept-server [--stop-after MS] [PORT]
 *          PORT 0 (the default) takes any free port; the port the server
 *          got is printed as "listening on 127.0.0.1:PORT".
 *          --stop-after MS  send ourselves SIGINT after MS milliseconds
 *                           (for tests)
 *        accept-server --client PORT
 *          connect to 127.0.0.1:PORT once and print the reply (a client
 *          for the smoke test, so that it needs no other tool)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <interruptible.h>

static intr_token *tok;

static void on_sigint(int sig)
{
	(void)sig;
	intr_token_cancel(tok);	/* async-signal-safe */
}

struct server {
	unsigned short port;	/* in: requested (0: any); out: the one got */
	int fd;			/* the listening socket, -1 once closed */
	unsigned long served;	/* connections answered */
	int closed_by_finalizer;
};

/* Runs after the body, cancelled or not: the body may return from anywhere
 * and the socket is still closed exactly once. */
static void close_listener(void *arg)
{
	struct server *s = arg;

	close(s->fd);
	s->fd = -1;
	s->closed_by_finalizer = 1;
}

static int open_listener(struct server *s)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int one = 1;

	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(s->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(s->fd, 16) ||
	    getsockname(s->fd, (struct sockaddr *)&sin, &len)) {
		int err = -errno;

		close(s->fd);
		s->fd = -1;
		return err;
	}
	s->port = ntohs(sin.sin_port);
	return 0;
}

/* One connection: a short reply, then close.  intr_write() rather than
 * write(): a client that never reads cannot hold up a cancel. */
static int serve(intr_ctx *ctx, int c, unsigned long n)
{
	char reply[64];
	int len;
	ssize_t w;

	len = snprintf(reply, sizeof(reply), "hello from accept-server, "
		       "connection %lu\n", n);
	w = intr_write(ctx, c, reply, (size_t)len);
	close(c);
	return w < 0 ? (int)w : 0;
}

static void *accept_loop(intr_ctx *ctx, void *arg)
{
	struct server *s = arg;
	int ret, c;

	ret = open_listener(s);
	if (ret) {
		fprintf(stderr, "listen on 127.0.0.1:%u: %s\n", s->port,
			strerror(-ret));
		return (void *)(long)ret;
	}
	/* Registered as soon as there is something to release. */
	intr_defer(ctx, close_listener, s);
	printf("listening on 127.0.0.1:%u; press Ctrl-C to stop\n", s->port);
	fflush(stdout);	/* the smoke test reads the port from a file */

	for (;;) {
		c = intr_accept(ctx, s->fd, NULL, NULL);
		if (c == -ECANCELED || c == -ETIMEDOUT)
			break;		/* cancelled: the finalizer cleans up */
		if (c < 0) {
			/* A client that gave up before we took it, or a
			 * passing shortage: not a reason to stop serving. */
			if (c == -ECONNABORTED || c == -EMFILE ||
			    c == -ENFILE || c == -ENOBUFS || c == -ENOMEM)
				continue;
			fprintf(stderr, "accept: %s\n", strerror(-c));
			return (void *)(long)c;
		}
		/* A connection the kernel handed over is returned even if the
		 * cancel came at the same moment: serve it, and the next
		 * intr_accept() reports the cancel. */
		ret = serve(ctx, c, s->served + 1);
		if (ret == -ECANCELED || ret == -ETIMEDOUT)
			break;
		if (ret == 0)
			s->served++;
		else
			fprintf(stderr, "reply: %s\n", strerror(-ret));
	}
	return NULL;
}

/* --client PORT: connect once, print what the server says.  Plain calls:
 * this is an ordinary program, not a body. */
static int client(const char *port)
{
	struct sockaddr_in sin;
	char buf[256];
	ssize_t n;
	size_t got = 0;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)atoi(port));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		perror("connect");
		return 1;
	}
	while (got < sizeof(buf) - 1) {
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* EOF: the server closed */
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	fputs(buf, stdout);
	return got ? 0 : 1;
}

static void *stopper(void *arg)
{
	struct timespec ts;
	long ms = (long)arg;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
	kill(getpid(), SIGINT);
	return NULL;
}

static void stop_after(long ms)
{
	sigset_t block;
	pthread_t th;

	/* The stopper blocks SIGINT (it inherits this mask): the main thread
	 * takes it. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	pthread_create(&th, NULL, stopper, (void *)ms);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
	pthread_detach(th);
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--stop-after MS] [PORT]\n"
		"       %s --client PORT\n", argv0, argv0);
	return 2;
}

int main(int argc, char **argv)
{
	struct server s = { .port = 0, .fd = -1 };
	struct sigaction sa;
	long stop_ms = -1;
	void *res;
	int i, ret;

	if (argc == 3 && !strcmp(argv[1], "--client"))
		return client(argv[2]);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--stop-after") && i + 1 < argc)
			stop_ms = atol(argv[++i]);
		else if (argv[i][0] != '-')
			s.port = (unsigned short)atoi(argv[i]);
		else
			return usage(argv[0]);
	}

	/* A client that hangs up before reading its reply must give us
	 * -EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	/* The token first, so that the handler always has one to cancel. */
	ret = intr_token_new(&tok, NULL);
	if (ret) {
		fprintf(stderr, "intr_token_new: %s\n", strerror(-ret));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	if (stop_ms >= 0)
		stop_after(stop_ms);

	ret = run_interruptible(tok, accept_loop, &s, &res);
	if (ret == 0 || res) {
		/* The body gave up on its own (it printed why). */
		fprintf(stderr, "server stopped: %s\n",
			res ? strerror(-(int)(long)res) : "no cancel");
		intr_token_free(tok);
		return 1;
	}
	/* Cancelled.  If the SIGINT came before the body ran, there is no
	 * socket and nothing was served. */
	printf("stopped: run_interruptible returned %s; listening socket %s\n",
	       ret == -ECANCELED ? "-ECANCELED" : "-ETIMEDOUT",
	       s.closed_by_finalizer ? "closed by the finalizer" :
	       "never opened");
	printf("served %lu connections\n", s.served);
	intr_token_free(tok);
	return 0;
}
