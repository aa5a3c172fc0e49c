/* SPDX-License-Identifier: MIT */
/*
 * Handle suite: the lives of tokens, tasks and contexts as the API hands
 * them out.
 *
 * 1. intr_task_fd racing intr_join, RACE_ROUNDS rounds (INTR_TEST_SCALE
 *    scales them; at 500, 100,000 rounds): one thread asks for the task's
 *    fd while another joins it, within a few microseconds of each other.  Whichever wins, no fd may be left open after the join
 *    (the fd intr_task_fd returned is closed by the join, or there was
 *    none), and nothing may be written to an fd the process opens after
 *    the join (one that reuses the number of a closed eventfd).  Under
 *    AddressSanitizer and ThreadSanitizer (make check-asan, check-tsan)
 *    the same rounds show any use of a task the join has freed.
 *
 * Every wait is bounded.
 */
#include "config.h"
#include "harness.h"

#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#define RACE_ROUNDS	20000	/* INTR_TEST_SCALE=500: 100,000 */
#define WAIT_MS		5000
#define TEST_TIMEOUT	300

/* ------------------------------------------------------------ helpers */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own */
}

static void futex_wait_ne(atomic_int *w, int val, unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	if (atomic_load(w) == val)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake_all(atomic_int *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ------------------------------------------ 1. intr_task_fd vs intr_join */

struct fd_race {
	atomic_int round;	/* the round the fd thread is to run */
	atomic_int ready;	/* the round it is about to run */
	atomic_int finished;	/* the round it has run */
	_Atomic(intr_task *) task;
	uint64_t spin_ns;	/* how long it waits before intr_task_fd */
	int fd;			/* what intr_task_fd returned */
};

static void *fd_thread(void *p)
{
	struct fd_race *r = p;
	int k = 0;

	for (;;) {
		uint64_t end = h_deadline(WAIT_MS);

		while (atomic_load(&r->round) == k) {
			if (h_passed(end))
				return NULL;
			futex_wait_ne(&r->round, k, 100);
		}
		k = atomic_load(&r->round);
		if (k < 0)
			return NULL;
		atomic_store(&r->ready, k);
		h_spin_ns(r->spin_ns);
		r->fd = intr_task_fd(atomic_load(&r->task));
		atomic_store(&r->finished, k);
		futex_wake_all(&r->finished);
	}
}

static void *flag_body(intr_ctx *ctx, void *p)
{
	(void)ctx;
	atomic_store((atomic_int *)p, 1);
	return p;
}

START_TEST(task_fd_join_race)
{
	long rounds = h_scale(RACE_ROUNDS), got_fd = 0, refused = 0;
	long leaked = 0, written = 0, other = 0;
	struct fd_race r = { .fd = -1 };
	struct h_rng rng;
	int fds0, fds1, k;
	pthread_t th;

	h_rng_seed(&rng, "task_fd_join_race");
	/* The library's own fds (the service timer) first. */
	ck_assert_int_eq(run_interruptible(NULL, flag_body, &(atomic_int){ 0 },
					   NULL), 0);
	fds0 = count_fds();
	ck_assert_int_eq(pthread_create(&th, NULL, fd_thread, &r), 0);
	for (k = 1; k <= rounds; k++) {
		atomic_int body_done = 0;
		intr_task *t = NULL;
		uint64_t v, end;
		void *res = NULL;
		int decoy, ret;

		ck_assert_int_eq(intr_spawn(&t, NULL, flag_body, &body_done),
				 0);
		ck_assert(h_spin_atomic(&body_done, 1, WAIT_MS));
		r.spin_ns = h_rng_below(&rng, 2) ? h_rng_below(&rng, 3000) : 0;
		atomic_store(&r.task, t);
		atomic_store(&r.round, k);
		futex_wake_all(&r.round);
		/* Join within a few microseconds of the other thread's
		 * intr_task_fd, on either side of it. */
		end = h_deadline(WAIT_MS);
		while (atomic_load(&r.ready) != k)
			ck_assert_msg(!h_passed(end), "round %d: the fd thread "
				      "did not start", k);
		if (!r.spin_ns)
			h_spin_ns(h_rng_below(&rng, 3000));
		ret = intr_join(t, &res);
		/* Opened after the join: it may get the number of the
		 * task's eventfd, which nobody may write to any more. */
		decoy = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ck_assert_int_ge(decoy, 0);
		while (atomic_load(&r.finished) != k) {
			ck_assert_msg(!h_passed(end), "round %d: intr_task_fd "
				      "did not return", k);
			futex_wait_ne(&r.finished, k - 1, 100);
		}
		ck_assert_int_eq(ret, 0);
		ck_assert_ptr_eq(res, &body_done);
		if (r.fd >= 0) {
			got_fd++;
			if (r.fd != decoy && fcntl(r.fd, F_GETFD) >= 0) {
				leaked++;
				close(r.fd);
			}
		} else if (r.fd == -EINVAL) {
			refused++;
		} else {
			other++;
		}
		if (read(decoy, &v, sizeof(v)) == sizeof(v))
			written++;
		close(decoy);
	}
	atomic_store(&r.round, -1);
	futex_wake_all(&r.round);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	fds1 = count_fds();
	printf("task_fd_join_race: %ld rounds: intr_task_fd got the fd %ld "
	       "times, -EINVAL %ld, other %ld; %ld fds still open after the "
	       "join, %ld writes into an fd opened after it; fds %d before, "
	       "%d after\n", rounds, got_fd, refused, other, leaked, written,
	       fds0, fds1);
	fflush(stdout);
	ck_assert_msg(other == 0, "intr_task_fd returned neither an fd nor "
		      "-EINVAL %ld times", other);
	ck_assert_msg(leaked == 0, "%ld of %ld rounds: the fd returned by "
		      "intr_task_fd was still open after the join", leaked,
		      rounds);
	ck_assert_msg(written == 0, "%ld of %ld rounds: the task's eventfd "
		      "write landed in an fd opened after the join", written,
		      rounds);
	ck_assert_int_eq(fds1, fds0);
	if (h_full_scale())
		ck_assert_msg(got_fd > 0 && refused > 0, "the race went one "
			      "way only: %ld fds, %ld refused", got_fd,
			      refused);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *make_suite(void)
{
	Suite *s = suite_create("handles");
	TCase *tc;

	tc = h_tcase(s, "task_fd", TEST_TIMEOUT);
	tcase_add_test(tc, task_fd_join_race);
	return s;
}

int main(void)
{
	return h_run_suite(make_suite());
}
