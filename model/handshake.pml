/* SPDX-License-Identifier: MIT */
/*
 * The completion handshake of lib/task.c, with store buffers: why the
 * aarch64 build under qemu-user hung until a fence was added, and why the
 * fence changes nothing on real hardware.
 *
 *   worker (task_complete, task.c)     joiner (intr_task_fd)
 *     atomic_exchange(&t->done, 1)     CAS(&t->fd, -1, fd)
 *     [fence]                          [fence]
 *     if (atomic_load(&t->fd) >= 0)    if (atomic_load(&t->done) & 3)
 *             write the eventfd                write the eventfd
 *
 * (The worker's exchange also returns the bit a sleeping joiner sets,
 * model/join.pml; here it is modelled as a plain store, which can wait in
 * the store buffer: weaker than the locked exchange the host may make of
 * it, so what holds here holds for that too.)
 *
 * This is the store-buffering pattern: each thread stores one variable,
 * then loads the other.  At least one of them must see the other's store,
 * or nobody makes the fd readable and a poller waits for ever.  C11
 * guarantees it for sequentially consistent atomics (one total order over
 * all of them): the code is correct without the fences.  ARMv8 keeps that
 * promise natively: GCC compiles the store to STLR and the load to LDAR,
 * and an LDAR is not satisfied before an earlier STLR of the same thread
 * is visible to all (release and acquire are "RCsc").
 *
 * qemu's TCG does not translate the pair that way.  For STLR it emits a
 * barrier before the store (release: earlier accesses first), for LDAR a
 * barrier after the load (acquire: later accesses after), and on an x86
 * host it emits only the store-to-load part of a barrier (a locked
 * instruction), x86 keeping every other order by itself.  Neither barrier
 * sits between the STLR and the LDAR, so on the host the worker's store
 * to done can wait in the store buffer while its load of fd reads memory:
 * x86 lets a load pass an earlier store to another address.  The
 * joiner's CAS is a host LOCK CMPXCHG, which drains its own buffer, so
 * only the worker's side can be reordered, and that is enough: the worker
 * reads fd == -1, the joiner reads done == 0, neither writes.  The
 * explicit seq_cst fence is a DMB ISH, which TCG translates to a full
 * barrier: it drains the store buffer before the load.
 *
 * Each run of this model is one completion racing one intr_task_fd.  The
 * worker's store goes into its store buffer, which drains into memory
 * whenever the Flush process runs; a load reads the buffer first (a
 * thread sees its own store), then memory.
 *
 * Properties (model/check.sh):
 *   handshake_qemu    qemu on an x86 host, with the fence: the assertion
 *                     holds (one of the two writes the eventfd).
 *   handshake_native  ARMv8 itself (-DNATIVE: the LDAR waits for the
 *                     earlier STLR to drain), without the fence
 *                     (-DWITHOUT_FENCE): holds too.
 * Mutant NO_FENCE: qemu on an x86 host without the fence breaks
 * handshake_qemu.
 */

bit done_mem;			/* t->done in memory: 0 or at least 1 */
bit fd_mem;			/* t->fd in memory: 0 is -1, 1 an eventfd */
bit done_buf;			/* done = 1 waits in the worker's buffer */
bit worker_wrote, joiner_wrote;	/* who made the eventfd readable */
bit worker_end, joiner_end;

#if defined(MUTATION_NO_FENCE) || defined(WITHOUT_FENCE)
#define FENCE	skip
#else
/* atomic_thread_fence(seq_cst): DMB ISH, a full barrier on the host:
 * the store buffer drains first. */
#define FENCE	(done_buf == 0)
#endif

active proctype Worker()
{
	/* atomic_exchange(&t->done, 1), taken as a store-release (STLR):
	 * into the store buffer */
	done_buf = 1;
	FENCE;
#ifdef NATIVE
	/* LDAR after STLR: the store is visible first (RCsc) */
	(done_buf == 0);
#endif
	/* atomic_load(&t->fd): LDAR; fd is not in this thread's buffer */
	if
	:: fd_mem -> worker_wrote = 1
	:: else
	fi;
	worker_end = 1
}

/* The worker's store buffer drains into memory at any time. */
active proctype Flush()
{
	atomic { done_buf -> done_mem = 1; done_buf = 0 }
}

active proctype Joiner()
{
	/* CAS(&t->fd, -1, fd): a locked instruction on the host, straight
	 * to memory; its own buffer holds nothing after it */
	fd_mem = 1;
	/* [fence]: nothing left to drain after the locked CAS */
	/* atomic_load(&t->done) */
	if
	:: done_mem -> joiner_wrote = 1
	:: else
	fi;
	joiner_end = 1
}

/* Once both are through, one of them made the fd readable. */
active proctype Poller()
{
	atomic {
		worker_end && joiner_end ->
		assert(worker_wrote || joiner_wrote)
	}
}
