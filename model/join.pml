/* SPDX-License-Identifier: MIT */
/*
 * The completion wake-up of lib/task.c: the worker wakes a joiner only if
 * one said it sleeps, and never touches the task after releasing it.
 *
 *   worker (task_complete, task.c)       joiner (wait_done, wait_released)
 *     old = exchange(&t->done, 1)        while (!(done & 3)) {
 *     [fence, eventfd: handshake.pml]        if (done == 0 &&
 *     if (old & WAITER)                          !CAS(&done, 0, WAITER))
 *             FUTEX_WAKE(&t->done)                   continue;
 *     store(&t->done, 2)                     FUTEX_WAIT(&done, WAITER)
 *                                        }
 *                                        wait for done == 2 (timed sleeps)
 *                                        free(t)
 *
 * FUTEX_WAIT sleeps only if the word still holds the value it is given,
 * checked atomically with going to sleep; it may also return at any time
 * (a signal: EINTR, modelled once), after which the joiner's loop looks
 * again.
 * FUTEX_WAKE wakes every sleeper on the word.  wait_released's sleeps
 * have a deadline, so it is modelled as waiting for done == 2 without a
 * wake-up.  One completion and one join (a task has at most one joiner).
 *
 * Properties (model/check.sh):
 *   join_free   no worker step reads or writes the task after the joiner
 *               freed it (an assertion on each of them), and the joiner
 *               is never left asleep: every end state is valid, the
 *               joiner having freed the task (pan's invalid end states).
 * Mutants:
 *   NO_WAITER_WAKE      the worker ignores the bit and never wakes:
 *                       the joiner sleeps for ever (invalid end state).
 *   WAKE_AFTER_RELEASE  the worker stores 2, then wakes: the joiner may
 *                       have freed the task, and the wake names it.
 *   WAKE_UNSAID         the joiner sleeps without setting the bit (it
 *                       waits while done reads 0): never woken.
 */

#define WAITER	4

byte done;		/* t->done: 0, WAITER, 1, 2 */
bit asleep;		/* the joiner sleeps in FUTEX_WAIT on done */
bit freed;		/* the joiner freed the task */
bit joined;		/* the joiner is through */
bit eintr = 1;		/* a signal may end one FUTEX_WAIT early */

/* The worker touches t: the task must still be there. */
#define TOUCH	assert(!freed)

/* FUTEX_WAKE(&t->done): names the task, wakes the sleeper if any. */
#define WAKE	atomic { TOUCH; asleep = 0 }

active proctype Worker()
{
	byte old;

	atomic { TOUCH; old = done; done = 1 }
#ifdef MUTATION_WAKE_AFTER_RELEASE
	atomic { TOUCH; done = 2 };
	if
	:: (old & WAITER) -> WAKE
	:: else
	fi
#else
	if
#ifdef MUTATION_NO_WAITER_WAKE
	:: true -> skip
#else
	:: (old & WAITER) -> WAKE
	:: else
#endif
	fi;
	atomic { TOUCH; done = 2 }	/* the last touch of t */
#endif
}

active proctype Joiner()
{
	byte d;

	do
	:: d = done;
	   if
	   :: (d & 3) -> break
	   :: else
	   fi;
#ifdef MUTATION_WAKE_UNSAID
	   /* FUTEX_WAIT(&done, 0) with no bit set */
	   atomic {
		if
		:: done == 0 -> asleep = 1
		:: else
		fi
	   };
#else
	   if
	   :: d == 0 ->
		/* CAS(&done, 0, WAITER); a failure looks again */
		atomic {
			if
			:: done == 0 -> done = WAITER; d = WAITER
			:: else -> d = done
			fi
		}
	   :: else
	   fi;
	   if
	   :: d != WAITER -> goto again
	   :: else
	   fi;
	   /* FUTEX_WAIT(&done, WAITER): sleeps only if the word still
	    * holds it, in one step with the compare */
	   atomic {
		if
		:: done == WAITER -> asleep = 1
		:: else
		fi
	   };
#endif
	   /* woken, or a signal ended the wait (EINTR; once, so that a
	    * joiner nobody wakes is seen to sleep for ever) */
	   if
	   :: asleep == 0
	   :: asleep == 1 && eintr -> asleep = 0; eintr = 0
	   fi;
again:	   skip
	od;
	/* wait_released: timed sleeps until the worker lets go */
	(done == 2);
	freed = 1;
	joined = 1
}
