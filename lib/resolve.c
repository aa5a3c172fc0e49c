/* SPDX-License-Identifier: MIT */
/*
 * intr_getaddrinfo(): getaddrinfo() for bodies, stopped by the cancel.
 *
 * libc's resolver waits in its own poll() and retries EINTR, and calls it
 * directly, where no interposition reaches: a body blocked in
 * getaddrinfo() on a server that does not answer stays there for the
 * resolver's whole timeout.  Here the name goes to c-ares, whose sockets
 * are waited on with intr_poll(), the library's window: a cancel ends the
 * wait at once, and the channel is destroyed with everything it holds.
 *
 * Only the lookup of a name in DNS (and /etc/hosts, which c-ares reads)
 * is c-ares's.  Everything else is libc's own, so the rules are the same
 * as getaddrinfo()'s: a numeric host, or no host, is answered by libc with
 * AI_NUMERICHOST (no network); each address a lookup found is expanded by
 * libc, as the numeric host it now is, with the caller's service and
 * hints (one entry per socket type, the port, AI_PASSIVE, the family
 * checks), and the service and hints are checked by libc before any
 * packet is sent.  The result is copied into entries of our own, one
 * allocation each with its address (the canonical name apart), freed by
 * intr_freeaddrinfo().
 *
 * The configuration is the system's (/etc/resolv.conf), or the file that
 * INTR_RESOLV_CONF names (ignored in set-uid programs).  Its nameserver
 * lines may give a port ("nameserver 127.0.0.1:5353", "[::1]:5353"), which
 * c-ares of this age does not read itself: they are read here and handed
 * to it as its server list.
 *
 * Built without c-ares, intr_getaddrinfo() exists and returns -ENOSYS, so
 * that the library exports the same functions in every build.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/* Our entries: the address right after the struct, in the same block. */
static struct addrinfo *entry_copy(const struct addrinfo *src)
{
	struct addrinfo *a;

	a = intr__malloc(INTR_SITE_RESOLVE, sizeof(*a) + src->ai_addrlen);
	if (!a)
		return NULL;
	*a = *src;
	a->ai_addr = (struct sockaddr *)(void *)(a + 1);
	memcpy(a->ai_addr, src->ai_addr, src->ai_addrlen);
	a->ai_canonname = NULL;
	a->ai_next = NULL;
	return a;
}

/* A copy of the canonical name, for the first entry. */
static int canon_copy(struct addrinfo *res, const char *name)
{
	size_t n = strlen(name) + 1;

	res->ai_canonname = intr__malloc(INTR_SITE_RESOLVE_NAME, n);
	if (!res->ai_canonname)
		return EAI_MEMORY;
	memcpy(res->ai_canonname, name, n);
	return 0;
}

INTR_API void intr_freeaddrinfo(struct addrinfo *res)
{
	struct addrinfo *next;
	int e = errno;

	for (; res; res = next) {
		next = res->ai_next;
		free(res->ai_canonname);
		free(res);
	}
	errno = e;
}

/* Append copies of libc's list to *tail; EAI_MEMORY if one fails. */
static int append(struct addrinfo ***tail, const struct addrinfo *list)
{
	struct addrinfo *a;

	for (; list; list = list->ai_next) {
		a = entry_copy(list);
		if (!a)
			return EAI_MEMORY;
		**tail = a;
		*tail = &a->ai_next;
	}
	return 0;
}

/* libc's answer for a numeric host (or none), copied; EAI_NONAME if the
 * host is a name. */
static int numeric(const char *node, const char *service,
		   const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h = *hints, *list = NULL, **tail = res;
	int r;

	h.ai_flags |= AI_NUMERICHOST;
	r = getaddrinfo(node, service, &h, &list);
	if (r)
		return r;
	r = append(&tail, list);
	if (!r && (hints->ai_flags & AI_CANONNAME) && list->ai_canonname)
		r = canon_copy(*res, list->ai_canonname);
	freeaddrinfo(list);
	return r;
}

#ifdef HAVE_CARES
#include <arpa/inet.h>
#include <ares.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_start(void)
{
	ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

struct lookup {
	bool done;
	int status;
	struct ares_addrinfo *ai;
};

static void lookup_done(void *arg, int status, int timeouts,
			struct ares_addrinfo *ai)
{
	struct lookup *lk = arg;

	lk->done = true;
	lk->status = status;
	lk->ai = ai;
}

static int eai_of(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
	case ARES_ENONAME:
		return EAI_NONAME;
	case ARES_ENODATA:
#ifdef EAI_NODATA
		return EAI_NODATA;
#else
		return EAI_NONAME;
#endif
	case ARES_ENOMEM:
		return EAI_MEMORY;
	case ARES_EBADFAMILY:
		return EAI_FAMILY;
	case ARES_EBADFLAGS:
		return EAI_BADFLAGS;
	case ARES_ETIMEOUT:
	case ARES_ECONNREFUSED:
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
		return EAI_AGAIN;
	default:
		return EAI_FAIL;
	}
}

/* The "nameserver ADDR[:PORT]" lines of file, as c-ares's server list
 * ("ADDR:PORT,[ADDR6]:PORT"), if one of them gives a port; "" if none does.
 * EAI_AGAIN if the file cannot be opened for lack of fds, EAI_FAIL if it
 * cannot be read at all. */
static int servers_of(const char *file, char *csv, size_t size)
{
	char buf[4096], *line, *save = NULL, *p, *end;
	bool ports = false;
	size_t used = 0;
	ssize_t n;
	int fd;

	csv[0] = 0;
	if (intr__fault(INTR_SITE_RESOLV_CONF)) {
		errno = EMFILE;
		fd = -1;
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? EAI_AGAIN :
		       errno == ENOMEM ? EAI_MEMORY : EAI_FAIL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return EAI_FAIL;
	buf[n] = 0;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		p = line + strspn(line, " \t");
		if (strncmp(p, "nameserver", 10) != 0 ||
		    (p[10] != ' ' && p[10] != '\t'))
			continue;
		p += 10 + strspn(p + 10, " \t");
		end = p + strcspn(p, " \t#;");
		*end = 0;
		if (!*p)
			continue;
		/* "1.2.3.4:53" and "[::1]:53" have a port; "::1" has not. */
		if (*p == '[' || (strchr(p, ':') == strrchr(p, ':') &&
				  strchr(p, ':')))
			ports = true;
		if (used + strlen(p) + 2 > size)
			break;
		used += (size_t)snprintf(csv + used, size - used, "%s%s",
					 used ? "," : "", p);
	}
	if (!ports)
		csv[0] = 0;
	return 0;
}

/* The channel, configured from INTR_RESOLV_CONF or the system. */
static int channel_new(ares_channel *ch)
{
	const char *file = secure_getenv("INTR_RESOLV_CONF");
	struct ares_options o;
	char csv[1024];
	int r, mask = 0;

	memset(&o, 0, sizeof(o));
	csv[0] = 0;
	if (file && *file) {
		r = servers_of(file, csv, sizeof(csv));
		if (r)
			return r;
		o.resolvconf_path = (char *)file;
		mask |= ARES_OPT_RESOLVCONF;
	}
	r = ares_init_options(ch, &o, mask);
	if (r != ARES_SUCCESS)
		return r == ARES_ENOMEM ? EAI_MEMORY : EAI_FAIL;
	if (csv[0] && ares_set_servers_ports_csv(*ch, csv) != ARES_SUCCESS) {
		ares_destroy(*ch);
		return EAI_FAIL;
	}
	return 0;
}

/* Run the channel until the lookup is done or the call is cancelled:
 * 0, or the reason. */
static int wait_lookup(intr_ctx *ctx, ares_channel ch, struct lookup *lk)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	struct pollfd fds[ARES_GETSOCK_MAXNUM];
	struct timeval tv, *tvp;
	unsigned bits;
	int i, n, r, ms;

	while (!lk->done) {
		/* c-ares's ARES_GETSOCK_* macros shift a signed 1 into the
		 * sign bit: the bits are read unsigned here. */
		bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		for (i = n = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (!ev)
				continue;
			fds[n].fd = socks[i];
			fds[n].events = ev;
			fds[n].revents = 0;
			n++;
		}
		tvp = ares_timeout(ch, NULL, &tv);
		ms = tvp ? (int)(tvp->tv_sec * 1000 + (tvp->tv_usec + 999) /
				 1000) : -1;
		if (!n && ms < 0)
			return 0;	/* nothing to wait for: c-ares is done */
		r = intr_poll(ctx, fds, (nfds_t)n, ms);
		if (r == -ECANCELED || r == -ETIMEDOUT)
			return r;
		if (r <= 0) {
			/* A timeout (or a poll error: let c-ares time the
			 * query out rather than spin). */
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < n && !lk->done; i++) {
			if (!fds[i].revents)
				continue;
			ares_process_fd(ch,
				fds[i].revents & (POLLIN | POLLERR | POLLHUP) ?
				fds[i].fd : ARES_SOCKET_BAD,
				fds[i].revents & (POLLOUT | POLLERR) ?
				fds[i].fd : ARES_SOCKET_BAD);
		}
	}
	return 0;
}

/* Each address found, as the numeric host it is, through libc with the
 * caller's service and hints. */
static int expand(const struct ares_addrinfo *ai, const char *service,
		  const struct addrinfo *hints, struct addrinfo **res)
{
	const struct ares_addrinfo_node *nd;
	struct addrinfo h = *hints, *list, **tail = res;
	bool v6 = false, map;
	char host[INET6_ADDRSTRLEN + 8];
	const void *addr;
	int r;

	h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~AI_CANONNAME;
	for (nd = ai->nodes; nd; nd = nd->ai_next)
		v6 |= nd->ai_family == AF_INET6;
	/* AI_V4MAPPED: IPv4 addresses as IPv6 when none were found, or with
	 * them for AI_ALL. */
	map = hints->ai_family == AF_INET6 &&
	      (hints->ai_flags & AI_V4MAPPED) &&
	      (!v6 || (hints->ai_flags & AI_ALL));
	for (nd = ai->nodes; nd; nd = nd->ai_next) {
		if (nd->ai_family == AF_INET) {
			if (hints->ai_family == AF_INET6 && !map)
				continue;
			addr = &((const struct sockaddr_in *)(const void *)
				 nd->ai_addr)->sin_addr;
			snprintf(host, sizeof(host), "%s",
				 map ? "::ffff:" : "");
		} else if (nd->ai_family == AF_INET6) {
			addr = &((const struct sockaddr_in6 *)(const void *)
				 nd->ai_addr)->sin6_addr;
			host[0] = 0;
		} else {
			continue;
		}
		inet_ntop(nd->ai_family, addr, host + strlen(host),
			  INET6_ADDRSTRLEN);
		list = NULL;
		r = getaddrinfo(host, service, &h, &list);
		if (r == EAI_MEMORY || r == EAI_SERVICE || r == EAI_SOCKTYPE)
			return r;
		if (r)
			continue;	/* not for these hints (AI_ADDRCONFIG) */
		r = append(&tail, list);
		freeaddrinfo(list);
		if (r)
			return r;
	}
	return *res ? 0 : EAI_NONAME;
}

static int canon(const struct ares_addrinfo *ai, const char *node,
		 struct addrinfo *res)
{
	const struct ares_addrinfo_cname *c;
	const char *name = ai->name ? ai->name : node;

	/* The end of the CNAME chain, if there is one. */
	for (c = ai->cnames; c; c = c->next)
		if (c->name)
			name = c->name;
	return canon_copy(res, name);
}

static int lookup(intr_ctx *ctx, const char *node, const char *service,
		  const struct addrinfo *hints, struct addrinfo **res)
{
	struct ares_addrinfo_hints ah;
	struct lookup lk = { 0 };
	ares_channel ch;
	int r;

	pthread_once(&ares_once, ares_start);
	if (ares_init_status != ARES_SUCCESS)
		return EAI_MEMORY;
	r = channel_new(&ch);
	if (r)
		return r;
	memset(&ah, 0, sizeof(ah));
	ah.ai_family = hints->ai_family == AF_INET6 &&
		       (hints->ai_flags & AI_V4MAPPED) ? AF_UNSPEC :
		       hints->ai_family;
	ah.ai_flags = hints->ai_flags & AI_CANONNAME ? ARES_AI_CANONNAME : 0;
	ares_getaddrinfo(ch, node, NULL, &ah, lookup_done, &lk);
	r = wait_lookup(ctx, ch, &lk);
	/* Cancelled: the lookup ends here, with ARES_EDESTRUCTION. */
	ares_destroy(ch);
	if (!r && !lk.done)
		r = EAI_FAIL;
	if (!r && lk.status != ARES_SUCCESS)
		r = eai_of(lk.status);
	if (!r)
		r = expand(lk.ai, service, hints, res);
	if (!r && (hints->ai_flags & AI_CANONNAME))
		r = canon(lk.ai, node, *res);
	if (lk.ai)
		ares_freeaddrinfo(lk.ai);
	return r;
}
#endif /* HAVE_CARES */

INTR_API int intr_getaddrinfo(intr_ctx *ctx, const char *node,
			      const char *service,
			      const struct addrinfo *hints,
			      struct addrinfo **res)
{
	/* getaddrinfo's defaults when no hints are given. */
	static const struct addrinfo none = {
		.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG,
		.ai_family = AF_UNSPEC,
	};
	struct intr_task *t = intr__body_of(ctx);
	int e = errno, r;

	if (!t || !res)
		return -EINVAL;
	*res = NULL;
#ifdef HAVE_CARES
	if (!hints)
		hints = &none;
	if (atomic_load(&t->tok.reason))
		return intr__acknowledge(t);
	/* A numeric host or none, a bad service or hints: libc's answer,
	 * with no packet sent. */
	r = numeric(node, service, hints, res);
	if (r == EAI_NONAME && node && !(hints->ai_flags & AI_NUMERICHOST))
		r = lookup(ctx, node, service, hints, res);
	/* With libinterruptible-libc, the cancel may have stopped one of
	 * the libc calls on the way (the resolver file's read, c-ares's
	 * connect, send or recv), which the lookup then reported as an
	 * EAI_* failure: a failure of a cancelled call is the cancel's.  An
	 * answer that came in is kept. */
	if (r && atomic_load(&t->tok.reason))
		r = intr__acknowledge(t);
#else
	(void)none;
	(void)numeric;
	r = -ENOSYS;
#endif
	if (r) {
		intr_freeaddrinfo(*res);
		*res = NULL;
	}
	errno = e;
	return r;
}
