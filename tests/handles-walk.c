/* SPDX-License-Identifier: MIT */
/*
 * Description: the handle registry's walk reaches every handle of a kind
 * while the callback deletes other handles, as the clean-up of a fork child
 * does (each parent call's own token leaves the registry as the call ends).
 *
 * The keys are chosen, not left to the library's counter: each round makes
 * NPAIRS tasks and their own tokens, with handle values drawn from a fixed
 * sequence, fills the smallest table to three quarters (as full as the registry lets it get,
 * so runs of occupied slots are long) and walks the tasks with a callback
 * that deletes the task's token.  Every task must be seen, only live tasks
 * may be seen, every token must be gone afterwards.  Deletions shift
 * entries back, and in some rounds they shift a task across the walk's
 * position: the test counts those rounds and requires some (a walk that
 * loses such a task misses it; one that copes may see it twice).  The
 * sequence is the same on every run, so a walk that loses an entry loses it
 * every time.  Linked statically: the registry is hidden.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

#define ROUNDS		2000
#define NPAIRS		24		/* 48 handles: a 64-slot table, 3/4 */

static uintptr_t task_key[NPAIRS], token_key[NPAIRS];
static int obj[NPAIRS];			/* what task i's handle names */
static unsigned seen[NPAIRS];
static bool deleted[NPAIRS];
static unsigned foreign, dead;
static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t next_rand(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A handle value of the given kind, from the fixed sequence. */
static uintptr_t make_key(enum intr__kind kind)
{
	return (uintptr_t)(next_rand() << 3) | (uintptr_t)kind;
}

/* A parent call ended in the child: its own token leaves the registry. */
static void end_call(void *p)
{
	unsigned i;

	if (p < (void *)obj || p >= (void *)(obj + NPAIRS)) {
		foreign++;
		return;
	}
	i = (unsigned)((int *)p - obj);
	if (intr__handle_get(task_key[i], INTR_H_TASK) != p)
		dead++;
	seen[i]++;
	if (!deleted[i]) {
		intr__handle_del(token_key[i]);
		deleted[i] = true;
	}
}

int main(void)
{
	unsigned r, i, missed = 0, twice = 0, moved = 0, tokens_left = 0;
	unsigned tasks_left = 0, bad_rounds = 0;
	sigset_t ss;
	int ret = 0;

	ret = intr__handles_reserve(NPAIRS);
	tap_ok(ret == 0, "room for %u handles", 2 * NPAIRS);
	for (r = 0; r < ROUNDS && !ret; r++) {
		unsigned m = 0, t = 0;

		memset(seen, 0, sizeof(seen));
		memset(deleted, 0, sizeof(deleted));
		for (i = 0; i < NPAIRS; i++) {
			task_key[i] = make_key(INTR_H_TASK);
			token_key[i] = make_key(INTR_H_TOKEN);
		}
		intr__tree_lock(&ss);
		for (i = 0; i < NPAIRS && !ret; i++) {
			ret = intr__handle_insert(task_key[i], &obj[i]);
			if (!ret)
				ret = intr__handle_insert(token_key[i],
							  &obj[i]);
		}
		/* As in the fork child: one thread, nothing else runs. */
		if (!ret)
			intr__handles_each(INTR_H_TASK, end_call);
		for (i = 0; i < NPAIRS; i++) {
			m += !seen[i];
			t += seen[i] > 1;
			tokens_left += intr__handle_get(token_key[i],
							INTR_H_TOKEN) != NULL;
			tasks_left += intr__handle_get(task_key[i],
						       INTR_H_TASK) == NULL;
			intr__handle_del(token_key[i]);
			intr__handle_del(task_key[i]);
		}
		intr__tree_unlock(&ss);
		missed += m;
		twice += t;
		moved += m || t;
		bad_rounds += m > 0;
	}
	tap_ok(ret == 0, "%u rounds of %u tasks and their tokens registered",
	       ROUNDS, NPAIRS);
	tap_diag("%u rounds: %u with a task moved across the walk; %u tasks "
		 "missed (in %u rounds), %u seen twice", ROUNDS, moved, missed,
		 bad_rounds, twice);
	tap_ok(moved > 0, "deletions moved tasks across the walk in %u rounds "
	       "(the case under test)", moved);
	tap_ok(missed == 0, "every task seen by the walk (%u missed)", missed);
	tap_ok(foreign == 0 && dead == 0, "only live tasks seen (%u foreign, "
	       "%u dead)", foreign, dead);
	tap_ok(tokens_left == 0, "every task's token deleted (%u left)",
	       tokens_left);
	tap_ok(tasks_left == 0, "the tasks stay registered (%u gone)",
	       tasks_left);
	return tap_done();
}
