/* SPDX-License-Identifier: MIT */
/*
 * What a thread knows of the call it runs.  Written by the call's life
 * (call.c) on the thread that runs it; read by the handler, the wrappers,
 * the context hooks and the wake-ups on that same thread.  It sits below
 * all of them, so that none has to reach up into call.c for it.
 */
#include "config.h"

#include "internal.h"

INTR_TLS struct intr_task *intr__current;
INTR_TLS int intr__in_body;
