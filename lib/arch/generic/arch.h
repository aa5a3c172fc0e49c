/* SPDX-License-Identifier: MIT */
/*
 * Any other architecture: no assembly window.  intr__sc_call checks the
 * flag and makes the system call from C; a signal landing between the two
 * is not seen by the handler, and the call blocks until the library's
 * re-send interrupts it (after resend_us at the latest).
 */
#ifndef INTR_ARCH_H
#define INTR_ARCH_H

#define INTR_HAVE_WINDOW 0

#endif
