/* SPDX-License-Identifier: MIT */
/*
 * Registry of live handles (tokens and tasks), an open-addressing hash set
 * keyed by address with linear probing and backward-shift deletion.  Public
 * functions look a handle up here, under the tree lock, before touching it,
 * so a freed, joined or made-up pointer is refused with -EINVAL and never
 * dereferenced.  Look-ups allocate nothing and are async-signal-safe (the
 * cancel path uses them); only intr__handle_add may grow the table.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct slot {
	const void *p;
	int kind;
};

static struct slot *tab;
static size_t cap;	/* a power of two, or 0 */
static size_t used;

static size_t hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t find(const void *p)
{
	size_t i = hash(p) & (cap - 1);

	while (tab[i].p && tab[i].p != p)
		i = (i + 1) & (cap - 1);
	return i;
}

static int grow(void)
{
	size_t ncap = cap ? cap * 2 : 64;
	struct slot *old = tab;
	size_t ocap = cap, i;

	tab = calloc(ncap, sizeof(*tab));
	if (!tab) {
		tab = old;
		return -ENOMEM;
	}
	cap = ncap;
	for (i = 0; i < ocap; i++)
		if (old[i].p)
			tab[find(old[i].p)] = old[i];
	free(old);
	return 0;
}

int intr__handle_add(const void *p, enum intr__kind kind)
{
	size_t i;

	if ((used + 1) * 2 > cap) {
		int ret = grow();

		if (ret)
			return ret;
	}
	i = find(p);
	if (!tab[i].p)
		used++;
	tab[i].p = p;
	tab[i].kind = kind;
	return 0;
}

bool intr__handle_live(const void *p, enum intr__kind kind)
{
	size_t i;

	if (!p || !cap)
		return false;
	i = find(p);
	return tab[i].p == p && tab[i].kind == (int)kind;
}

void intr__handle_del(const void *p)
{
	size_t i, j, home;

	if (!p || !cap)
		return;
	i = find(p);
	if (!tab[i].p)
		return;
	tab[i].p = NULL;
	used--;
	/* Shift back the entries of the run after i that probed past it. */
	for (j = (i + 1) & (cap - 1); tab[j].p; j = (j + 1) & (cap - 1)) {
		home = hash(tab[j].p) & (cap - 1);
		if (((j - home) & (cap - 1)) >= ((j - i) & (cap - 1))) {
			tab[i] = tab[j];
			tab[j].p = NULL;
			i = j;
		}
	}
}
