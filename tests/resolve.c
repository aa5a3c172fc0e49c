/* SPDX-License-Identifier: MIT */
/*
 * Description: intr_getaddrinfo() resolves like getaddrinfo() and stops at
 * once when the call is cancelled, against DNS servers of the test's own.
 *
 * Two UDP sockets on 127.0.0.1: a tiny DNS responder (stop.test has an A
 * and an AAAA record, alias.test is a CNAME for it, everything else is
 * NXDOMAIN) and a socket that swallows every query.  INTR_RESOLV_CONF
 * points intr_getaddrinfo() at one or the other, never at the system's
 * resolver.  Cancels land 0-3 ms after the spawn, 100 times: every call
 * returns the reason, with no fd left open (the checker builds look for
 * leaked memory).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "body.h"
#include "tap.h"

#define BOUND_MS 10000

static char dir[64], conf_answer[128], conf_swallow[128];
static int dns_fd = -1, swallow_fd = -1;
static atomic_int dns_stop;

/* ------------------------------------------------------------ a DNS server */

static int udp_on_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

/* The question's name as dotted text; its end in *end.  -1 if bad. */
static int qname(const unsigned char *m, size_t n, size_t off, char *out,
		 size_t size, size_t *end)
{
	size_t o = 0;

	while (off < n && m[off]) {
		unsigned len = m[off++];

		if (len > 63 || off + len > n || o + len + 2 > size)
			return -1;
		memcpy(out + o, m + off, len);
		o += len;
		out[o++] = '.';
		off += len;
	}
	if (off >= n)
		return -1;
	out[o] = 0;
	*end = off + 1;
	return 0;
}

static size_t put_name(unsigned char *p, const char *name)
{
	size_t o = 0;
	const char *dot;

	while (*name) {
		dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);

		p[o++] = (unsigned char)len;
		memcpy(p + o, name, len);
		o += len;
		name += len + (dot ? 1 : 0);
	}
	p[o++] = 0;
	return o;
}

static size_t put_rr(unsigned char *p, const char *name, int type,
		     const void *data, size_t len)
{
	size_t o = name ? put_name(p, name) : 0;

	if (!name) {		/* a pointer to the question's name */
		p[o++] = 0xc0;
		p[o++] = 12;
	}
	p[o++] = 0;
	p[o++] = (unsigned char)type;
	p[o++] = 0;
	p[o++] = 1;		/* IN */
	memcpy(p + o, "\0\0\0\x3c", 4);	/* TTL 60 */
	o += 4;
	p[o++] = (unsigned char)(len >> 8);
	p[o++] = (unsigned char)len;
	memcpy(p + o, data, len);
	return o + len;
}

static void *dns_main(void *arg)
{
	unsigned char q[512], r[1024];
	static const unsigned char a4[4] = { 192, 0, 2, 10 };
	unsigned char a6[16] = { 0x20, 0x01, 0x0d, 0xb8 }, cname[64];
	struct sockaddr_storage from;
	char name[256];

	a6[15] = 0x10;
	while (!atomic_load(&dns_stop)) {
		socklen_t flen = sizeof(from);
		struct pollfd p = { .fd = dns_fd, .events = POLLIN };
		size_t end, o;
		ssize_t n;
		int type, an = 0;
		bool known;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recvfrom(dns_fd, q, sizeof(q), 0,
			     (struct sockaddr *)&from, &flen);
		if (n < 12 || qname(q, (size_t)n, 12, name, sizeof(name),
				    &end) || end + 4 > (size_t)n)
			continue;
		type = q[end + 1];
		memcpy(r, q, end + 4);
		o = end + 4;
		known = !strcasecmp(name, "stop.test.") ||
			!strcasecmp(name, "alias.test.");
		if (!strcasecmp(name, "alias.test.")) {
			size_t cl = put_name(cname, "stop.test");

			o += put_rr(r + o, NULL, 5, cname, cl);	/* CNAME */
			an++;
		}
		if (known && type == 1) {
			o += put_rr(r + o, an ? "stop.test" : NULL, 1, a4, 4);
			an++;
		} else if (known && type == 28) {
			o += put_rr(r + o, an ? "stop.test" : NULL, 28, a6,
				    16);
			an++;
		}
		r[2] = 0x84 | (q[2] & 1);	/* QR, AA, RD copied */
		r[3] = known ? 0x80 : 0x83;	/* RA; NXDOMAIN */
		r[4] = 0;
		r[5] = 1;
		r[6] = 0;
		r[7] = (unsigned char)an;
		memset(r + 8, 0, 4);
		sendto(dns_fd, r, o, 0, (struct sockaddr *)&from, flen);
	}
	return NULL;
}

static bool write_conf(char *path, size_t size, const char *name, int port,
		       const char *options)
{
	FILE *f;

	snprintf(path, size, "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "# a resolver of the test's own\nnameserver 127.0.0.1:%d\n"
		"options %s\n", port, options);
	return fclose(f) == 0;
}

/* ------------------------------------------------------------ bodies */

struct res_call {
	const char *node, *service;
	struct addrinfo hints;
	bool no_hints;
	struct addrinfo *res;
	int r;
	atomic_int started;
	uint64_t done_ns;
	uint64_t deadline_ns;	/* set by the body on its own token, or 0 */
};

static void *resolve_body(intr_ctx *ctx, void *arg)
{
	struct res_call *c = arg;

	atomic_store(&c->started, 1);
	/* From the body, so that the time before a loaded machine starts it
	 * does not count. */
	if (c->deadline_ns &&
	    intr_token_cancel_after(intr_ctx_token(ctx), c->deadline_ns)) {
		c->r = 1;
		return NULL;
	}
	c->r = intr_getaddrinfo(ctx, c->node, c->service,
				c->no_hints ? NULL : &c->hints, &c->res);
	c->done_ns = h_now_ns();
	return NULL;
}

static int resolve(const char *conf, struct res_call *c)
{
	setenv("INTR_RESOLV_CONF", conf, 1);
	return run_interruptible(NULL, resolve_body, c, NULL);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "address:port/socktype/protocol" of every entry, sorted (the order of
 * addresses is the resolver's choice), joined. */
static void describe(const struct addrinfo *a, char *out, size_t size)
{
	char items[32][80], *ptr[32];
	size_t o = 0, n = 0, i;

	for (; a && n < 32; a = a->ai_next, n++) {
		char host[INET6_ADDRSTRLEN];
		int port;

		if (a->ai_family == AF_INET) {
			const struct sockaddr_in *s = (const void *)a->ai_addr;

			inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
			port = ntohs(s->sin_port);
		} else {
			const struct sockaddr_in6 *s = (const void *)a->ai_addr;

			inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
			port = ntohs(s->sin6_port);
		}
		snprintf(items[n], sizeof(items[n]), "%s:%d/%d/%d", host, port,
			 a->ai_socktype, a->ai_protocol);
		ptr[n] = items[n];
	}
	qsort(ptr, n, sizeof(ptr[0]), cmp_str);
	out[0] = 0;
	for (i = 0; i < n && o + 82 < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", o ? " " : "",
				      ptr[i]);
}

/* libc's own answer for the numeric hosts, in that order. */
static void libc_expect(const char *hosts[], const char *service,
			const struct addrinfo *hints, char *out, size_t size)
{
	struct addrinfo h = *hints, *list, *all = NULL, **tail = &all;
	int i;

	h.ai_flags |= AI_NUMERICHOST;
	h.ai_flags &= ~AI_CANONNAME;
	for (i = 0; hosts[i]; i++) {
		if (getaddrinfo(hosts[i], service, &h, &list))
			continue;
		*tail = list;
		while (*tail)
			tail = &(*tail)->ai_next;
	}
	describe(all, out, size);
	freeaddrinfo(all);	/* glibc frees entry by entry */
}

static void check_answer(const char *what, const char *node,
			 const char *service, const struct addrinfo *hints,
			 const char *hosts[], const char *canon)
{
	struct res_call c = { .node = node, .service = service,
			      .hints = *hints };
	char got[1024], want[1024];
	int r;

	r = resolve(conf_answer, &c);
	describe(c.res, got, sizeof(got));
	libc_expect(hosts, service, hints, want, sizeof(want));
	tap_ok(r == 0 && c.r == 0 && !strcmp(got, want) &&
	       (!canon || (c.res && c.res->ai_canonname &&
			   !strcmp(c.res->ai_canonname, canon))),
	       "%s: %d, [%s] as libc expands [%s]%s%s", what, c.r, got, want,
	       canon ? ", canonical name " : "",
	       canon && c.res && c.res->ai_canonname ? c.res->ai_canonname :
	       "");
	intr_freeaddrinfo(c.res);
}

static void answers(void)
{
	struct addrinfo h = { .ai_family = AF_UNSPEC,
			      .ai_socktype = SOCK_STREAM };
	static const char *both[] = { "192.0.2.10", "2001:db8::10", NULL };
	static const char *v4[] = { "192.0.2.10", NULL };
	static const char *v6[] = { "2001:db8::10", NULL };
	struct res_call c = { 0 };
	int r;

	check_answer("stop.test, stream, any family", "stop.test", "80", &h,
		     both, NULL);
	h.ai_family = AF_INET;
	check_answer("stop.test, IPv4", "stop.test", "80", &h, v4, NULL);
	h.ai_family = AF_INET6;
	check_answer("stop.test, IPv6", "stop.test", "http", &h, v6, NULL);
	h.ai_family = AF_INET;
	h.ai_socktype = 0;
	check_answer("stop.test, every socket type", "stop.test", "53", &h,
		     v4, NULL);
	h.ai_socktype = SOCK_STREAM;
	h.ai_flags = AI_CANONNAME;
	check_answer("alias.test: the CNAME's target as canonical name",
		     "alias.test", "80", &h, v4, "stop.test");
	h.ai_family = AF_INET6;
	h.ai_flags = AI_V4MAPPED | AI_ALL;
	check_answer("stop.test, AI_V4MAPPED | AI_ALL", "stop.test", "80", &h,
		     (const char *[]){ "2001:db8::10", "::ffff:192.0.2.10",
				       NULL }, NULL);

	c = (struct res_call){ .node = "nothere.test", .service = "80",
			       .hints = { .ai_family = AF_INET } };
	r = resolve(conf_answer, &c);
	tap_ok(r == 0 && c.r == EAI_NONAME && !c.res,
	       "NXDOMAIN: EAI_NONAME (%s), nothing returned",
	       gai_strerror(c.r));

	/* No packet for these: the swallowing server would hang them. */
	c = (struct res_call){ .node = "127.0.0.1", .service = "80",
			       .hints = { .ai_socktype = SOCK_STREAM } };
	r = resolve(conf_swallow, &c);
	tap_ok(r == 0 && c.r == 0 && c.res && !c.res->ai_next,
	       "a numeric host: libc's answer, no server asked");
	intr_freeaddrinfo(c.res);
	c = (struct res_call){ .node = "stop.test", .service = "no-such-svc",
			       .hints = { .ai_socktype = SOCK_STREAM } };
	r = resolve(conf_swallow, &c);
	tap_ok(r == 0 && c.r == EAI_SERVICE,
	       "an unknown service: EAI_SERVICE before any packet (%s)",
	       gai_strerror(c.r));
	c = (struct res_call){ .node = NULL, .service = "80", .no_hints = true };
	r = resolve(conf_swallow, &c);
	tap_ok(r == 0 && c.r == 0 && c.res,
	       "no host, no hints: libc's loopback answer");
	intr_freeaddrinfo(c.res);
}

/* ------------------------------------------------------------ cancels */

static void cancels(int rounds)
{
	struct b_lat lat = { 0 };
	uint64_t seed = h_now_ns();
	int i, bad = 0, ran = 0, fds0;

	setenv("INTR_RESOLV_CONF", conf_swallow, 1);
	fds0 = b_fds();
	for (i = 0; i < rounds; i++) {
		struct res_call c = { .node = "stop.test", .service = "80",
				      .hints = { .ai_family = AF_UNSPEC } };
		intr_token *tok;
		intr_task *t;
		uint64_t t0;
		int r;

		seed = seed * 6364136223846793005ull + 1;
		if (intr_token_new(&tok, NULL) ||
		    intr_spawn(&t, tok, resolve_body, &c)) {
			bad++;
			break;
		}
		h_spin_ns((seed >> 33) % 3000000);
		t0 = h_now_ns();
		intr_token_cancel(tok);
		r = b_join_within(t, NULL, BOUND_MS);
		if (r == -ETIME) {
			bad++;
			break;	/* c is still in use */
		}
		if (atomic_load(&c.started)) {
			ran++;
			b_lat_add(&lat, c.done_ns - t0);
			if (c.r != -ECANCELED || c.res)
				bad++;
		}
		if (r != -ECANCELED)
			bad++;
		intr_token_free(tok);
	}
	tap_ok(!bad && b_fds() == fds0,
	       "%d cancels 0-3 ms after the spawn, on a server that never "
	       "answers: each lookup returned -ECANCELED (%d reached it, %d "
	       "wrong, %d fds left; back p50 %.1f us, p99 %.1f us)", rounds,
	       ran, bad, b_fds() - fds0, (double)b_lat_q(&lat, 0.5) / 1000.0,
	       (double)b_lat_q(&lat, 0.99) / 1000.0);
	b_lat_free(&lat);
}

static void deadline(void)
{
	struct res_call c = { .node = "stop.test", .service = "80",
			      .hints = { .ai_family = AF_UNSPEC },
			      .deadline_ns = 50000000 };
	intr_token *tok;
	uint64_t t0 = h_now_ns();
	int r;

	setenv("INTR_RESOLV_CONF", conf_swallow, 1);
	if (intr_token_new(&tok, NULL)) {
		tap_ok(false, "deadline: token");
		return;
	}
	r = run_interruptible(tok, resolve_body, &c, NULL);
	tap_ok(r == -ETIMEDOUT && c.r == -ETIMEDOUT && !c.res,
	       "a 50 ms deadline on a server that never answers: -ETIMEDOUT "
	       "(%s) after %.1f ms", strerror(-c.r),
	       (double)(h_now_ns() - t0) / 1e6);
	intr_token_free(tok);
}

static void misuse(void)
{
	struct addrinfo *res = (struct addrinfo *)1;
	struct res_call c = { .node = "127.0.0.1" };

	tap_ok(intr_getaddrinfo(NULL, "127.0.0.1", NULL, NULL, &res) ==
	       -EINVAL, "off a worker: -EINVAL");
	c.r = 1;
	run_interruptible(NULL, resolve_body, &c, NULL);
	tap_ok(intr_getaddrinfo((intr_ctx *)&c, "x", NULL, NULL, NULL) ==
	       -EINVAL, "a ctx that is not this thread's: -EINVAL");
	intr_freeaddrinfo(c.res);
	intr_freeaddrinfo(NULL);
}

static void *nop(intr_ctx *ctx, void *arg)
{
	return NULL;
}

int main(void)
{
	const char *scale = getenv("INTR_TEST_SCALE");
	int pct = scale && atoi(scale) > 0 ? atoi(scale) : 100;
	struct addrinfo *res = NULL;
	struct res_call c = { .node = "127.0.0.1" };
	pthread_t th;
	int port_a, port_s;

	run_interruptible(NULL, resolve_body, &c, NULL);
	intr_freeaddrinfo(c.res);
	if (c.r == -ENOSYS) {
		tap_ok(intr_getaddrinfo(NULL, "x", NULL, NULL, &res) ==
		       -EINVAL && !res, "misuse is still -EINVAL");
		tap_ok(true, "built without c-ares: intr_getaddrinfo returns "
		       "-ENOSYS");
		return tap_done();
	}
	snprintf(dir, sizeof(dir), "%s/intr-resolve-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	dns_fd = udp_on_loopback(&port_a);
	swallow_fd = udp_on_loopback(&port_s);
	if (dns_fd < 0 || swallow_fd < 0 || !mkdtemp(dir))
		tap_skip_all("no UDP socket on 127.0.0.1 here");
	if (!write_conf(conf_answer, sizeof(conf_answer), "answer.conf",
			port_a, "timeout:5 attempts:2") ||
	    !write_conf(conf_swallow, sizeof(conf_swallow), "swallow.conf",
			port_s, "timeout:30 attempts:1"))
		tap_skip_all("cannot write a resolver file in %s", dir);
	if (pthread_create(&th, NULL, dns_main, NULL))
		tap_skip_all("no thread for the DNS responder");
	run_interruptible(NULL, nop, NULL, NULL);	/* the service threads */

	answers();
	deadline();
	cancels(100 * pct / 100 + 1);
	misuse();

	atomic_store(&dns_stop, 1);
	pthread_join(th, NULL);
	close(dns_fd);
	close(swallow_fd);
	unlink(conf_answer);
	unlink(conf_swallow);
	rmdir(dir);
	return tap_done();
}
