// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test-only: veer's version and backend choice (bpf/lib/lb.h and the helpers
 * it is built from) in a program type that BPF_PROG_TEST_RUN can run. The
 * connect hooks themselves are cgroup sock_addr programs, which have no
 * test_run in any kernel, so tests/integration/lb_prog_test.cpp drives this
 * one tc program instead: one run is one connection.
 *
 * It walks lb_select()'s kernel path for a service without L7 or lanes: the
 * live generation, the service, its weight slot (the service's round robin,
 * or the client's affinity_slot() under session affinity) and slot_version(),
 * the version, its Maglev ring at lb_mix64(socket cookie) (or the client's
 * key), the backend. A tc program has no connecting socket or task, so the
 * cookie and the client key are inputs.
 */
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#include "lib/lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Inputs, set through the skeleton before each run. */
struct veer_svc_key lbt_key = {}; /* addr, port, proto; gen comes from veer_state */
__u64 lbt_cookie = 0;		  /* the connecting socket's cookie */
__u64 lbt_client = 0;		  /* affinity_client() of the connecting task */

/* Outputs of the last run. */
__u32 lbt_version_id = 0; /* veer_version key id chosen */
__u32 lbt_ring_slot = 0;  /* Maglev ring entry read (versions of 2+ backends) */
__u32 lbt_backend_id = 0; /* veer_backend key id chosen */

/* Return codes: where the choice ended. */
#define LBT_OK 0
#define LBT_NO_STATE 1
#define LBT_NOT_A_SERVICE 2
#define LBT_NO_RR 3
#define LBT_NO_VERSION 4
#define LBT_NO_BACKEND 5

SEC("tc")
int lb_pick(struct __sk_buff *skb)
{
	struct veer_svc_key key = lbt_key;
	struct veer_version_key vkey = {};
	struct veer_backend_key bkey = {};
	const struct veer_maglev_ring *ring;
	const struct veer_service *svc;
	const struct veer_version *ver;
	struct veer_state *state;
	struct veer_rr *rr;
	__u32 zero = 0, slot, idx;
	int affinity;

	state = bpf_map_lookup_elem(&veer_state, &zero);
	if (!state)
		return LBT_NO_STATE;
	key.gen = state->gen & 1;
	svc = bpf_map_lookup_elem(&veer_svc, &key);
	if (!svc)
		return LBT_NOT_A_SERVICE;
	affinity = svc->flags & VEER_SVC_F_AFFINITY;
	if (affinity) {
		slot = affinity_slot(lbt_client);
	} else {
		rr = bpf_map_lookup_elem(&veer_rr, &svc->svc_id);
		if (!rr)
			return LBT_NO_RR;
		slot = __sync_fetch_and_add(&rr->next, 1) % VEER_WEIGHT_SLOTS;
	}
	idx = slot_version(svc, slot);
	if (idx >= VEER_MAX_VERSIONS)
		return LBT_NO_VERSION;
	vkey.id = svc->version_id[idx];
	vkey.gen = key.gen;
	ver = bpf_map_lookup_elem(&veer_version, &vkey);
	if (!ver || !ver->n_backends)
		return LBT_NO_VERSION;
	lbt_version_id = vkey.id;
	if (ver->n_backends == 1) {
		idx = 0;
	} else {
		ring = bpf_map_lookup_elem(&veer_maglev, &vkey);
		if (!ring)
			return LBT_NO_BACKEND;
		slot = (affinity ? lbt_client >> 17 : lb_mix64(lbt_cookie)) % VEER_MAGLEV_SIZE;
		lb_barrier_var(slot);
		if (slot >= VEER_MAGLEV_SIZE)
			return LBT_NO_BACKEND;
		lbt_ring_slot = slot;
		idx = ring->backend_index[slot];
	}
	if (idx >= VEER_MAX_BACKENDS_PER_VERSION)
		return LBT_NO_BACKEND;
	bkey.id = ver->backend_id[idx];
	bkey.gen = key.gen;
	if (!bpf_map_lookup_elem(&veer_backend, &bkey))
		return LBT_NO_BACKEND;
	lbt_backend_id = bkey.id;
	return LBT_OK;
}
