/* SPDX-License-Identifier: MIT */
/* The library's own threads: how each one is started. */
#include "config.h"

#include <pthread.h>

#include "internal.h"

/* Start a library thread with every signal blocked but the synchronous
 * faults, so nothing reaches it before it is ready.  Every library thread
 * is joinable: unloading the library (intr__fini) must wait until none
 * runs its code any more. */
int intr__create_thread(enum intr__site site, void *(*fn)(void *), void *arg,
			pthread_t *th)
{
	pthread_attr_t attr;
	sigset_t saved;
	int ret;

	ret = pthread_attr_init(&attr);
	if (ret)
		return -ret;
	if (intr__cfg.stack_size)
		ret = pthread_attr_setstacksize(&attr, intr__cfg.stack_size);
	if (!ret) {
		pthread_sigmask(SIG_SETMASK, &intr__quiet_mask, &saved);
		ret = intr__fault(site) ? EAGAIN :
			pthread_create(th, &attr, fn, arg);
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
	}
	pthread_attr_destroy(&attr);
	return -ret;
}
