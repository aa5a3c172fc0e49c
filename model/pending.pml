/* SPDX-License-Identifier: MIT */
/*
 * Which deliveries of a classic interrupt signal are the library's, when
 * the kernel may lose their details: signal.c intr__signal_send,
 * handler(), delivered() and lost_is_ours(), as a Promela model for spin.
 *
 * When the per-user queue of signal details is full (RLIMIT_SIGPENDING),
 * the kernel still delivers a classic signal, with si_code SI_USER and
 * si_pid 0: one of the library's then looks exactly like the
 * application's own kill() or sigqueue() whose details were lost.  The
 * library must not pass its own on (with the default disposition, SIGUSR1
 * ends the process), and must not swallow the application's.  Per worker,
 * ours_pending (F) names the last send of ours to that thread, with a bit
 * while its system call has not returned; deliveries with details carry
 * the send's number; the kernel keeps at most one instance of the signal
 * pending per thread, and drops a send while one is.
 *
 * Two workers, each running a call that is cancelled: a canceller sends to
 * both, the service thread re-sends to the second, and the application
 * (or another process) sends the second one signal of its own.  Each send
 * may lose its details.  All sends go through the tree
 * lock, and so share the send numbers.  Each worker's handler takes what
 * the kernel delivers; it runs with the signal blocked, so what it asks
 * the kernel (is the signal pending?) holds until it returns.
 *
 * Property pending_safe (assertions, and no invalid end state):
 *   - the library never passes on one of its own lost signals, except in
 *     place of an application's lost signal it took for its own (the two
 *     cannot be told apart; the application still sees as many as it was
 *     sent): per worker, ours passed on <= foreign swallowed;
 *   - it swallows an application's lost signal only when one of its own
 *     was merged into it by the kernel, or after a send (its own or the
 *     application's) has overlapped a delivery on that worker, while the
 *     handler was busy with it (then whether the signal still pending is
 *     ours or the application's cannot be told apart): without such a
 *     race, an application's lost signal is always passed on.
 *
 * Mutants (model/check.sh):
 *   PENDING_ANY_SEND   every send sets ours_pending, only a lost delivery
 *                      clears it (the design before send numbers): after
 *                      one ordinary cancel the application's first lost
 *                      signal is swallowed
 *   PENDING_CLEAR_ALL  every delivery with details clears ours_pending,
 *                      whichever send it was: a send racing it loses its
 *                      mark, and its lost signal is passed on
 *   PENDING_NO_LOCK    a delivery does not wait for a send in flight
 *                      before it settles ours_pending: the send's signal,
 *                      made after the check, is passed on
 *
 * Abstracted away: the calls' states (model/interrupt.pml), the body's
 * mask (the signal is always deliverable between handlers),
 * process-directed signals (only the thread's own pending slot is
 * modelled), real-time signals (never sent without details), sends that
 * fail, and send numbers wrapping around.
 */

#define NW	2

#define E_NONE	0	/* nothing pending */
#define E_OURS	1	/* ours, details kept: slot_seq is its number */
#define E_LOST	2	/* details lost: SI_USER, pid 0 */
#define E_APP	3	/* the application's, details kept */

byte lk;			/* the tree lock: 0 free, else holder + 1 */
byte seq;			/* intr__signal_send's counter (tree lock) */

byte slot[NW];			/* the kernel: the thread's pending signal */
byte slot_seq[NW];
bool slot_app[NW];		/* ghost: an E_LOST one is the application's */
bool slot_merged[NW];		/* ghost: a send of ours was dropped into it */
bool busy[NW];			/* ghost: the handler is between taking a
				 * signal and being done with it */
bool raced[NW];			/* ghost: a send (ours or not) has
				 * overlapped a delivery on this worker */

byte F[NW];			/* TLS intr__ours_pending: seq * 2 + in flight */

byte ours_passed[NW];		/* ghost: ours passed on */
byte app_swallowed[NW];		/* ghost: the application's taken for ours */

#define lock()		atomic { lk == 0 -> lk = _pid + 1 }
#define unlock()	lk = 0

/* The kernel takes one send to thread w: a new instance if nothing is
 * pending, its details lost or not; dropped into the pending one else. */
inline kernel_send(w, ours, n)
{
	if
	:: slot[w] == E_NONE ->
		slot_merged[w] = false;
		if
		:: ours -> slot[w] = E_OURS; slot_seq[w] = n
		:: !ours -> slot[w] = E_APP
		:: slot[w] = E_LOST; slot_app[w] = !ours
		fi
	:: else ->
		if
		:: ours -> slot_merged[w] = true
		:: else
		fi
	fi
}

/* signal.c intr__signal_send to worker w; tree lock held.  mark, n: the
 * caller's locals.  Sends never fail here, so what is outstanding before
 * (put back when one does) is not kept. */
inline send(w)
{
	seq++;
	n = seq;
	mark = n * 2;
#ifdef MUTATION_PENDING_ANY_SEND
	F[w] = 1;
	atomic { kernel_send(w, true, n) }
#else
	atomic { F[w] = mark + 1; raced[w] = raced[w] || busy[w] }
	atomic {				/* rt_tgsigqueueinfo */
		kernel_send(w, true, n);
		raced[w] = raced[w] || busy[w]
	}
	/* Returned: the low bit goes, unless a delivery settled it. */
	atomic {
		if
		:: F[w] == mark + 1 -> F[w] = mark
		:: else
		fi
	}
#endif
}

/* signal.c settle(): after a delivery, ours_pending names a send whose
 * signal may still be owed only if the signal is pending now (the handler
 * runs with it blocked).  A send still in flight is waited for by taking
 * the tree lock, which the sender holds throughout. */
inline settle(w)
{
	f = F[w];
	if
	:: f == 0
	:: f != 0 ->
		locked = false;
		if
#ifndef MUTATION_PENDING_NO_LOCK
		:: f % 2 == 1 -> lock(); locked = true; f = F[w]
#endif
		:: else
		fi;
		/* sigpending(), then a compare-and-exchange */
		if
		:: f != 0 && slot[w] == E_NONE ->
			atomic { if :: F[w] == f -> F[w] = 0 :: else fi }
		:: else
		fi;
		if
		:: locked -> unlock()
		:: else
		fi
	fi
}

/* signal.c delivered(): ours with details, number s, on worker w. */
inline delivered(w, s)
{
#ifdef MUTATION_PENDING_ANY_SEND
	skip
#elif defined(MUTATION_PENDING_CLEAR_ALL)
	F[w] = 0
#else
	/* A compare-and-exchange loop: clear it while it names send s, in
	 * flight or returned. */
	atomic {
		if
		:: F[w] != 0 && F[w] / 2 == s -> F[w] = 0; f = 1
		:: else -> f = 0
		fi
	}
	if
	:: f == 0 -> settle(w)
	:: else
	fi
#endif
}

/* One worker's handler: each delivery in turn. */
proctype Worker(byte w)
{
	byte kind, s, f;
	bool app, merged, locked;

end_idle:
	do
	:: atomic {
		slot[w] != E_NONE ->
		kind = slot[w];
		s = slot_seq[w];
		app = slot_app[w];
		merged = slot_merged[w];
		raced[w] = raced[w] || F[w] % 2 == 1;
		busy[w] = true;
		slot[w] = E_NONE
	   }
		if
		:: kind == E_OURS -> delivered(w, s)
		:: kind == E_APP ->	/* passed on */
#if !defined(MUTATION_PENDING_ANY_SEND) && !defined(MUTATION_PENDING_CLEAR_ALL)
			settle(w)
#else
			skip
#endif
		:: kind == E_LOST ->
			/* lost_is_ours() */
			atomic {
				f = F[w];
				if
				:: f != 0 && app ->
					/* taken for ours: only where one of
					 * ours was merged into it, or after a
					 * send of ours raced a delivery */
					assert(merged || raced[w]);
					app_swallowed[w]++
				:: f == 0 && !app ->
					/* ours, passed on */
					assert(ours_passed[w] < app_swallowed[w]);
					ours_passed[w]++
				:: else
				fi
			}
			if
			:: f == 0
#ifdef MUTATION_PENDING_ANY_SEND
			:: f != 0 -> F[w] = 0
#else
			:: f != 0 -> settle(w)
#endif
			fi
		fi;
		/* forget this delivery */
		busy[w] = false;
		kind = 0; s = 0; f = 0;
		app = false; merged = false; locked = false
	od
}

/* intr_token_cancel on both calls. */
active proctype Canceller()
{
	byte mark, n;

	lock();
	send(0);
	unlock();
	lock();
	send(1);
	unlock()
}

/* service.c: a re-send, to the second worker. */
active proctype Service()
{
	byte mark, n;

	lock();
	send(1);
	unlock()
}

/* The application's own signal (or another process's), to the second
 * worker. */
active proctype App()
{
	atomic {
		kernel_send(1, false, 0);
		raced[1] = raced[1] || busy[1]
	}
}

init {
	atomic {
		run Worker(0);
		run Worker(1)
	}
}
