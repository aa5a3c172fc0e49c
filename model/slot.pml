/* SPDX-License-Identifier: MIT */
/*
 * The wake slot of lib/call.c and lib/syscall.c, with store buffers: the
 * same store-buffering pattern as the completion handshake
 * (model/handshake.pml), and the same reason for its fences.
 *
 *   canceller (token.c, call.c)        body (syscall.c intr_sleep)
 *     atomic_store(&reason, r)           CAS(&wslot, NONE, FUTEX)
 *     [fence]                            [fence]
 *     if (atomic_load(&wslot))           if (atomic_load(&reason))
 *             claim it, FUTEX_WAKE               return the reason
 *     else                               FUTEX_WAIT(&reason, 0)
 *             signal
 *
 * For the cancel to need no signal, one of the two loads must see the
 * other side's store: either the canceller finds the slot (and wakes a
 * wait the kernel's compare cannot miss: the store is out of the buffer
 * before its compare-and-swap of the slot, a locked instruction), or the
 * body finds the reason before it waits.  If both missed, the canceller
 * would signal a body about to sleep: no cancel lost (the signal ends the
 * sleep), but the wait would not be signal-free.  C11 sequentially
 * consistent atomics forbid that outcome, and so does ARMv8 itself
 * (LDAR waits for an earlier STLR); qemu-user on an x86 host lets the
 * canceller's load pass its own store (see handshake.pml) unless a full
 * barrier sits between them.  The body's CAS is a locked instruction on
 * the host, which drains its own buffer.
 *
 * Properties (model/check.sh):
 *   slot_qemu    qemu on an x86 host, with the fence: one load sees the
 *                other's store.
 *   slot_native  ARMv8 (-DNATIVE), without the fence (-DWITHOUT_FENCE):
 *                the same.
 * Mutant NO_FENCE: qemu on an x86 host without the fence breaks
 * slot_qemu.
 */

bit reason_mem;			/* tok.reason in memory: 0, or set */
bit reason_buf;			/* the canceller's store, in its buffer */
bit slot_mem;			/* wslot in memory: NONE, or FUTEX */
bit saw_slot, saw_reason;
bit canceller_end, body_end;

#if defined(MUTATION_NO_FENCE) || defined(WITHOUT_FENCE)
#define FENCE	skip
#else
/* atomic_thread_fence(seq_cst): a full barrier on the host. */
#define FENCE	(reason_buf == 0)
#endif

active proctype Canceller()
{
	/* atomic_store(&reason): STLR, into the store buffer */
	reason_buf = 1;
	FENCE;
#ifdef NATIVE
	/* LDAR after STLR: the store is visible first (RCsc) */
	(reason_buf == 0);
#endif
	/* atomic_load(&wslot) */
	if
	:: slot_mem -> saw_slot = 1
	:: else
	fi;
	canceller_end = 1
}

/* The canceller's store buffer drains into memory at any time. */
active proctype Flush()
{
	atomic { reason_buf -> reason_mem = 1; reason_buf = 0 }
}

active proctype Body()
{
	/* CAS(&wslot, NONE, FUTEX): locked, straight to memory */
	slot_mem = 1;
	/* [fence]: nothing left to drain after the locked CAS */
	/* atomic_load(&reason): the window's flag check */
	if
	:: reason_mem -> saw_reason = 1
	:: else
	fi;
	body_end = 1
}

/* Once both are through, one of them saw the other's store. */
active proctype Judge()
{
	atomic {
		canceller_end && body_end ->
		assert(saw_slot || saw_reason)
	}
}
