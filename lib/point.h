/* SPDX-License-Identifier: MIT */
/*
 * The private interface between libinterruptible and libinterruptible-libc
 * (lib/point.c says what each entry point does).  Not installed, not for
 * applications; the two libraries of one release use it together.
 */
#ifndef INTR_POINT_H
#define INTR_POINT_H

#include "interruptible.h"

/* intr__libc_syscall(): the call is cancelled.  Not a value any system
 * call returns (their errors are -1 to -4095). */
#define INTR__LIBC_STOP (-4096L)

intr_ctx *intr__libc_ctx(void);
long intr__libc_syscall(intr_ctx *ctx, long nr, long a1, long a2, long a3,
			long a4, long a5, long a6);
int intr__libc_stop(intr_ctx *ctx);
int intr__libc_signal(void);

#endif /* INTR_POINT_H */
