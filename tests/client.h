/* SPDX-License-Identifier: MIT */
/*
 * Shared by the client tests (tests/client-*.c, make check-clients): real
 * servers started by the test on loopback, and cancel rounds measured.
 *
 * Each client test is built twice: NAME.tap links libinterruptible-libc
 * (an application that opted in), NAME-plain.tap does not.  CLIENT_LIBC
 * says which one this is.
 *
 * Servers: srv_spawn() runs a program as a given user (the postgres user
 * for PostgreSQL when the test runs as root, which it refuses), its output
 * in a log, in a process group of its own; srv_stop() ends it, bounded.
 *
 * Rounds: rounds_run() spawns a body, lets the cancel land at a random
 * offset (0 to max_ns after the spawn: before the client reached its wait,
 * as it got there, or while it waits), joins with a bound, and records when
 * the body returned and when the join did; a body still blocked past the
 * bound is released by the test (ops->release) and counted as stuck.
 * Then ops->after puts the client back by its documented recipe and checks
 * that it works.  Latencies are printed as data; the assertions are
 * generous bounds that a loaded 2-core machine cannot miss by chance.
 */
#ifndef INTR_TEST_CLIENT_H
#define INTR_TEST_CLIENT_H

#include <dirent.h>
#include <glob.h>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "body.h"
#include "tap.h"

#ifndef CLIENT_LIBC
#define CLIENT_LIBC 0
#endif

#define CLIENT_BOUND_MS 10000	/* a round that takes longer is stuck */

/* INTR_CLIENT_ROUNDS overrides n (the measurement runs take 1000). */
static inline int client_rounds(int n)
{
	const char *e = getenv("INTR_CLIENT_ROUNDS");

	return e && atoi(e) > 0 ? atoi(e) : n;
}

/* ------------------------------------------------------------ servers */

struct srv {
	pid_t pid;
	char dir[96];		/* scratch directory, removed at the end */
	char log[160];
	int port;
	uid_t uid;		/* the server's user */
	gid_t gid;
};

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int srv_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A scratch directory owned by user (NULL: by us).  False on failure. */
static inline bool srv_dir(struct srv *s, const char *name, const char *user)
{
	const char *t = getenv("TMPDIR");
	struct passwd *pw;

	snprintf(s->dir, sizeof(s->dir), "%s/intr-%s-XXXXXX",
		 t && *t ? t : "/tmp", name);
	if (!mkdtemp(s->dir))
		return false;
	snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
	s->uid = getuid();
	s->gid = getgid();
	if (user && (pw = getpwnam(user))) {
		s->uid = pw->pw_uid;
		s->gid = pw->pw_gid;
		if (chown(s->dir, s->uid, s->gid))
			return false;
	}
	return true;
}

/* Run argv as the directory's user, output to the log; the child's pid,
 * or -1. */
static inline pid_t srv_exec(struct srv *s, char *const argv[], bool wait)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (!pid) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		setpgid(0, 0);
		if (fd >= 0) {
			if (fchown(fd, s->uid, s->gid)) {
				/* still writable by us */
			}
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (getuid() == 0 && s->uid != 0) {
			if (setgroups(0, NULL) || setgid(s->gid) ||
			    setuid(s->uid))
				_exit(126);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (!wait)
		return pid;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The server's last words, for a skip or a failure. */
static inline void srv_tail(const struct srv *s)
{
	char line[256];
	FILE *f = fopen(s->log, "r");
	int n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n++ < 40) {
		line[strcspn(line, "\n")] = 0;
		tap_diag("  %s", line);
	}
	fclose(f);
}

static inline void srv_rm(const char *path)
{
	struct dirent *de;
	char sub[4096];
	struct stat st;
	DIR *d;

	if (lstat(path, &st))
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strlen(path) + strlen(de->d_name) + 2 > sizeof(sub))
			continue;
		strcpy(sub, path);
		strcat(sub, "/");
		strcat(sub, de->d_name);
		srv_rm(sub);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

/* End the server (sig first, then SIGKILL after 10 s), and its files. */
static inline void srv_stop(struct srv *s, int sig)
{
	uint64_t end = h_now_ns() + 10000000000ull;
	int st;

	if (s->pid > 0) {
		kill(s->pid, sig);
		while (waitpid(s->pid, &st, WNOHANG) == 0) {
			if (h_now_ns() > end) {
				kill(-s->pid, SIGKILL);
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &st, 0);
				break;
			}
			b_sleep_ms(10);
		}
		s->pid = 0;
	}
	if (s->dir[0])
		srv_rm(s->dir);
	s->dir[0] = 0;
}

/* The first match of a glob pattern, or NULL. */
static inline const char *srv_find(const char *pattern, char *out,
				   size_t size)
{
	glob_t g;
	const char *r = NULL;

	if (!glob(pattern, 0, NULL, &g) && g.gl_pathc) {
		snprintf(out, size, "%s", g.gl_pathv[g.gl_pathc - 1]);
		r = out;
	}
	globfree(&g);
	return r;
}

/* ------------------------------------------------------------ rounds */

/* Idle workers end after 50 ms, so that thread counts settle. */
static inline void client_configure(void)
{
	struct intr_config cfg;

	intr_config_default(&cfg);
	cfg.idle_ms = 50;
	intr_configure(&cfg);
}

struct round_ops {
	/* Before each round (not timed): the client ready to block. */
	void (*prepare)(void *st);
	intr_fn body;
	/* The body still blocked past the bound: make it return. */
	void (*release)(void *st);
	/* After the round: the client usable again by its recipe; false
	 * if it is not (checked by using it). */
	bool (*after)(void *st, int join_ret);
};

/* What a body records. */
struct round_body {
	atomic_int fins;	/* finalizers run */
	uint64_t back_ns;	/* when the body returned */
	bool ran;		/* the body started */
	bool stopped;		/* it saw the cancel (the idiom's answer) */
};

static inline void round_fin(void *arg)
{
	atomic_fetch_add(&((struct round_body *)arg)->fins, 1);
}

struct round_stats {
	struct b_lat body;	/* cancel -> the body returned */
	struct b_lat join;	/* cancel -> run_interruptible's join */
	int rounds, ran, stuck, not_stopped, fin_bad, unusable, errors;
	int fds_before, fds_after, threads_before, threads_after;
	long heap_before, heap_after;
};

static inline long heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return (long)mi.uordblks;
}

/* n rounds; rb is the body's record inside st. */
static inline void rounds_run(struct round_stats *rs, int n,
			      const struct round_ops *ops, void *st,
			      struct round_body *rb, uint64_t max_ns)
{
	uint64_t seed = h_now_ns() ^ (uint64_t)getpid();
	int i;

	memset(rs, 0, sizeof(*rs));
	/* The samples' room first: the heap is measured around the rounds. */
	b_lat_reserve(&rs->body, (size_t)n);
	b_lat_reserve(&rs->join, (size_t)n);
	rs->fds_before = b_fds();
	rs->threads_before = b_threads();
	rs->heap_before = heap_in_use();
	for (i = 0; i < n; i++) {
		intr_token *tok;
		intr_task *t;
		uint64_t t0;
		int r;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if (ops->prepare)
			ops->prepare(st);
		atomic_store(&rb->fins, 0);
		rb->back_ns = 0;
		rb->ran = rb->stopped = false;
		if (intr_token_new(&tok, NULL) ||
		    intr_spawn(&t, tok, ops->body, st)) {
			rs->errors++;
			break;
		}
		h_spin_ns((seed >> 20) % (max_ns + 1));
		t0 = h_now_ns();
		intr_token_cancel(tok);
		r = b_join_within(t, NULL, CLIENT_BOUND_MS);
		if (r == -ETIME) {
			rs->stuck++;
			ops->release(st);
			r = b_join_within(t, NULL, CLIENT_BOUND_MS);
			if (r == -ETIME) {
				rs->errors++;
				break;	/* st is still in use */
			}
		} else {
			b_lat_add(&rs->join, h_now_ns() - t0);
			if (rb->ran)
				b_lat_add(&rs->body, rb->back_ns > t0 ?
					  rb->back_ns - t0 : 0);
		}
		rs->rounds++;
		if (rb->ran) {
			rs->ran++;
			if (!rb->stopped)
				rs->not_stopped++;
			if (atomic_load(&rb->fins) != 1)
				rs->fin_bad++;
		} else if (atomic_load(&rb->fins) != 0) {
			rs->fin_bad++;
		}
		if (!ops->after(st, r))
			rs->unusable++;
		intr_token_free(tok);
	}
	/* A worker may have been started while another was on its way back
	 * to the pool; idle ones end after idle_ms (client_configure). */
	{
		uint64_t end = h_now_ns() + 5000000000ull;

		while (b_threads() > rs->threads_before && h_now_ns() < end)
			b_sleep_ms(10);
	}
	rs->fds_after = b_fds();
	rs->threads_after = b_threads();
	rs->heap_after = heap_in_use();
}

/* One line of data, and the verdict: every round back, stopped by the
 * cancel, finalizers once, the client usable, nothing left behind. */
static inline void rounds_report(const char *what, struct round_stats *rs,
				 bool need_stop, long heap_slack)
{
	double b50 = (double)b_lat_q(&rs->body, 0.5) / 1e6;
	double b99 = (double)b_lat_q(&rs->body, 0.99) / 1e6;
	double j50 = (double)b_lat_q(&rs->join, 0.5) / 1e6;
	double j99 = (double)b_lat_q(&rs->join, 0.99) / 1e6;
	long heap = rs->heap_after - rs->heap_before;

	tap_diag("%s: %d rounds, %d reached the client; body back after the "
		 "cancel p50 %.2f ms, p99 %.2f ms; join p50 %.2f ms, p99 %.2f "
		 "ms; heap %+ld bytes", what, rs->rounds, rs->ran, b50, b99,
		 j50, j99, heap);
	tap_ok(!rs->errors && !rs->stuck && rs->ran > 0,
	       "%s: every body back (%d stuck past %d ms, %d errors)", what,
	       rs->stuck, CLIENT_BOUND_MS, rs->errors);
	/* Generous: 50 ms is the target; a 2-core machine under load may
	 * stall a thread for a while, never for a second at p99. */
	tap_ok(b99 < 1000.0,
	       "%s: p99 body back within 1 s of the cancel (%.2f ms; target "
	       "50 ms)", what, b99);
	if (need_stop)
		tap_ok(!rs->not_stopped,
		       "%s: every body that ran saw the cancel (%d did not)",
		       what, rs->not_stopped);
	tap_ok(!rs->fin_bad, "%s: finalizers ran once per body that ran (%d "
	       "wrong)", what, rs->fin_bad);
	tap_ok(!rs->unusable, "%s: the client usable again by its recipe "
	       "after every round (%d not)", what, rs->unusable);
	tap_ok(rs->fds_after == rs->fds_before &&
	       rs->threads_after <= rs->threads_before &&
	       heap < heap_slack,
	       "%s: nothing left behind (fds %+d, threads %+d, heap %+ld "
	       "bytes, slack %ld)", what, rs->fds_after - rs->fds_before,
	       rs->threads_after - rs->threads_before, heap, heap_slack);
	b_lat_free(&rs->body);
	b_lat_free(&rs->join);
}

#endif /* INTR_TEST_CLIENT_H */
