/* SPDX-License-Identifier: MIT */
/*
 * Description: libcurl in a body, curl_easy_perform() on a loopback HTTP
 * server that accepts and never answers, stopped by the cancel; the easy
 * handle usable again.
 *
 * A child process of the test serves two ports on 127.0.0.1: one accepts
 * connections, reads the requests and never answers (it closes a
 * connection when the client does, or when told to let everything go),
 * the other answers every request with 200 "ok".  Cancels land 0-3 ms
 * after the spawn: before curl connected, while it sends, or while it
 * waits for the answer.
 *
 *   plain idiom (tests/client-curl.tap, libinterruptible-libc linked):
 *     curl_easy_perform, and on failure intr_cancelled().  curl takes
 *     poll()'s EINTR for a timeout and polls again, which fails: the
 *     transfer ends with an error and curl closes its connection.
 *   progress recipe (both builds): CURLOPT_XFERINFOFUNCTION returns
 *     non-zero once intr_cancelled() says so; curl calls it whenever the
 *     signal breaks its wait: CURLE_ABORTED_BY_CALLBACK.
 *   Either way the handle is usable again: the next transfer, with
 *   CURLOPT_FRESH_CONNECT, gets its 200 from the answering port.
 *   without libinterruptible-libc (tests/client-curl-plain.tap): the plain
 *     idiom does not stop the transfer.
 */
#include "config.h"

#include "client.h"

#ifndef HAVE_LIBCURL
int main(void)
{
	tap_skip_all("built without libcurl (Debian: libcurl4-openssl-dev)");
}
#else
#include <curl/curl.h>
#include <poll.h>

static struct srv http;
static int silent_port, answer_port;
static char silent_url[64], answer_url[64];

/* ------------------------------------------------------------ the servers */

static volatile sig_atomic_t let_go;

static void on_usr2(int sig)
{
	let_go = 1;
}

static int listen_on(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, 128) || getsockname(fd, (struct sockaddr *)&a, &len))
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

#define MAXC 256

/* The child: poll both listeners and every connection. */
static void serve(int silent, int answer)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				 "Connection: close\r\n\r\nok";
	struct pollfd p[MAXC + 2];
	bool talks[MAXC + 2];
	char buf[4096];
	int n = 2, i;

	signal(SIGUSR2, on_usr2);
	p[0] = (struct pollfd){ .fd = silent, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = answer, .events = POLLIN };
	for (;;) {
		if (poll(p, (nfds_t)n, 100) < 0 && errno != EINTR)
			_exit(1);
		if (let_go) {
			for (i = 2; i < n; i++)
				close(p[i].fd);
			n = 2;
			let_go = 0;
		}
		for (i = 0; i < 2; i++) {
			int c;

			if (!(p[i].revents & POLLIN))
				continue;
			c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			if (n == MAXC + 2) {
				close(c);
				continue;
			}
			talks[n] = i == 1;
			p[n++] = (struct pollfd){ .fd = c, .events = POLLIN };
		}
		for (i = 2; i < n; i++) {
			ssize_t r;

			if (!p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			if (r > 0 && !talks[i])
				continue;	/* never answers */
			if (r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4) &&
			    write(p[i].fd, ok, sizeof(ok) - 1) < 0) {
				/* the client went away */
			}
			if (r > 0 && !memmem(buf, (size_t)r, "\r\n\r\n", 4))
				continue;
			close(p[i].fd);
			p[i] = p[n - 1];
			talks[i] = talks[n - 1];
			n--;
			i--;
		}
	}
}

static void http_start(void)
{
	int silent = listen_on(&silent_port), answer = listen_on(&answer_port);

	if (silent < 0 || answer < 0)
		tap_skip_all("no TCP listener on 127.0.0.1 here");
	http.pid = fork();
	if (http.pid < 0)
		tap_skip_all("fork");
	if (!http.pid)
		serve(silent, answer);
	close(silent);
	close(answer);
	snprintf(silent_url, sizeof(silent_url), "http://127.0.0.1:%d/wait",
		 silent_port);
	snprintf(answer_url, sizeof(answer_url), "http://127.0.0.1:%d/ok",
		 answer_port);
}

/* ------------------------------------------------------------ transfers */

struct cu {
	struct round_body rb;
	CURL *easy;
	char got[64];
	size_t got_n;
	bool recipe;
	intr_ctx *ctx;		/* for the progress callback */
	atomic_int tid;
	CURLcode rc;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct cu *c = arg;
	size_t len = size * n, room = sizeof(c->got) - 1 - c->got_n;

	memcpy(c->got + c->got_n, p, len < room ? len : room);
	c->got_n += len < room ? len : room;
	c->got[c->got_n] = 0;
	return len;
}

/* The recipe: curl asks whether to go on whenever its wait ends, which the
 * signal makes it do. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn,
		       curl_off_t ut, curl_off_t un)
{
	struct cu *c = arg;

	return c->ctx && intr_cancelled(c->ctx);
}

static void easy_setup(struct cu *c, const char *url)
{
	curl_easy_setopt(c->easy, CURLOPT_URL, url);
	curl_easy_setopt(c->easy, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, c->recipe ? 0L : 1L);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->easy, CURLOPT_XFERINFODATA, c);
}

static void *transfer_body(intr_ctx *ctx, void *arg)
{
	struct cu *c = arg;

	c->rb.ran = true;
	intr_defer(ctx, round_fin, &c->rb);
	atomic_store(&c->tid, b_gettid());
	c->ctx = ctx;
	c->rc = curl_easy_perform(c->easy);
	c->ctx = NULL;
	/* The README's idiom: it failed; were we cancelled? */
	c->rb.stopped = c->rc != CURLE_OK && intr_cancelled(ctx);
	c->rb.back_ns = h_now_ns();
	return NULL;
}

static void prepare(void *st)
{
	struct cu *c = st;

	easy_setup(c, silent_url);
	curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 0L);
}

/* The recipe afterwards: the next transfer on the same handle, on a fresh
 * connection, gets its answer. */
static bool after(void *st, int r)
{
	struct cu *c = st;
	long code = 0;
	CURLcode rc;

	easy_setup(c, answer_url);
	curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 1L);
	c->got_n = 0;
	c->got[0] = 0;
	rc = curl_easy_perform(c->easy);
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	return rc == CURLE_OK && code == 200 && !strcmp(c->got, "ok");
}

/* A body still waiting: the silent server lets every connection go. */
static void release(void *st)
{
	kill(http.pid, SIGUSR2);
}

static const struct round_ops ops = {
	.prepare = prepare, .body = transfer_body, .release = release,
	.after = after,
};

static void without_libc(struct cu *c)
{
	intr_token *tok;
	intr_task *t;
	int r;

	memset(&c->rb, 0, sizeof(c->rb));
	atomic_store(&c->tid, 0);
	prepare(c);
	if (intr_token_new(&tok, NULL) ||
	    intr_spawn(&t, tok, transfer_body, c)) {
		tap_ok(false, "without libinterruptible-libc: start");
		return;
	}
	b_wait_blocked(&c->tid, CLIENT_BOUND_MS);
	intr_token_cancel(tok);
	b_sleep_ms(200);	/* re-sends at 1, 2, 4, ... 128 ms */
	tap_ok(intr_tryjoin(t, NULL) == -EBUSY,
	       "without libinterruptible-libc: the plain idiom does not stop "
	       "the transfer (curl takes EINTR for a poll timeout)");
	release(c);
	r = b_join_within(t, NULL, CLIENT_BOUND_MS);
	tap_ok(r == -ECANCELED && after(c, r),
	       "without libinterruptible-libc: the server letting go ends it "
	       "(%d)", r);
	intr_token_free(tok);
}

static void *warm_body(intr_ctx *ctx, void *arg)
{
	return after(arg, 0) ? arg : NULL;
}

int main(void)
{
	struct round_stats st;
	struct cu c = { 0 };
	void *res = NULL;
	int st_child;

	client_configure();
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		tap_skip_all("curl_global_init failed");
	http_start();
	tap_diag("silent server %s, answering %s; libinterruptible-libc %s",
		 silent_url, answer_url, CLIENT_LIBC ? "linked" : "not linked");
	c.easy = curl_easy_init();
	tap_ok(c.easy && after(&c, 0), "a transfer outside bodies");
	run_interruptible(NULL, warm_body, &c, &res);
	tap_ok(res == &c, "a transfer in a body");

	if (CLIENT_LIBC) {
		rounds_run(&st, client_rounds(200), &ops, &c, &c.rb, 3000000);
		rounds_report("libcurl, plain idiom", &st, true, 64 * 1024);
	} else {
		without_libc(&c);
	}
	c.recipe = true;
	rounds_run(&st, client_rounds(200), &ops, &c, &c.rb, 3000000);
	rounds_report("libcurl, progress recipe", &st, true, 64 * 1024);

	curl_easy_cleanup(c.easy);
	curl_global_cleanup();
	kill(http.pid, SIGKILL);
	waitpid(http.pid, &st_child, 0);
	return tap_done();
}
#endif
