/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by the connect hooks (veer_sock) and the recycling iterators (veer_recycle). */
#ifndef VEER_BPF_COMMON_H
#define VEER_BPF_COMMON_H

#include <linux/types.h>

/* Hide a value from the compiler so the bounds check after it stays for the
 * verifier (a modulo result is unbounded to the verifier). */
#define lb_barrier_var(var) asm volatile("" : "+r"(var))

/* One 32-bit context load, as written: not widened into a 64-bit load of two
 * fields, nor sunk below a branch through a moved ctx pointer, both of which
 * the verifier refuses. */
#define ctx_u32(field) (*(volatile __u32 *)&(field))

/* murmur3 64-bit finalizer: spreads socket cookies over the Maglev ring and
 * client identities over the weight slots. */
static __always_inline __u64 lb_mix64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#endif /* VEER_BPF_COMMON_H */
