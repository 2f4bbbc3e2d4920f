/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Map definitions of the socket datapath. Layouts live in include/veer/maps.h. */
#ifndef VEER_BPF_MAPS_H
#define VEER_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "veer/maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct veer_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_SERVICES);
	__type(key, struct veer_svc_key);
	__type(value, struct veer_service);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_VERSION_IDS);
	__type(key, struct veer_version_key);
	__type(value, struct veer_version);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_version SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_VERSION_IDS);
	__type(key, struct veer_version_key);
	__type(value, struct veer_maglev_ring);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_BACKENDS);
	__type(key, struct veer_backend_key);
	__type(value, struct veer_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_backend SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VEER_REVNAT_ENTRIES);
	__type(key, struct veer_revnat_key);
	__type(value, struct veer_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct veer_sock_nat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_sock_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VEER_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct veer_rr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_rr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2 * VEER_MAX_VERSION_IDS);
	__type(key, struct veer_version_key);
	__type(value, struct veer_stats);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct veer_proxy);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_proxy SEC(".maps");

/* veer-proxy's listening sockets (VEER_PROXY_LISTENER_*): the kernel removes
 * an entry when its socket closes, so the connect hooks see a dead proxy with
 * no agent alive (lib/proxy.h). Value: the socket's fd on update, its cookie
 * on a lookup from userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, VEER_PROXY_LISTENERS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_proxy_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VEER_ORIG_DST_ENTRIES);
	__type(key, struct veer_orig_key);
	__type(value, struct veer_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_orig_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_BACKENDS);
	__type(key, struct veer_member_key);
	__type(value, struct veer_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_member SEC(".maps");

/* Not generation-bound: a pin outlives applies; veer_member decides whether
 * it is still valid. LRU: the least recently used clients go first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, VEER_AFFINITY_ENTRIES);
	__type(key, struct veer_affinity_key);
	__type(value, struct veer_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * VEER_MAX_LANE_CLIENTS);
	__type(key, struct veer_lane_key);
	__type(value, struct veer_lane);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_lane_of SEC(".maps");

/* Socket acceleration (lib/accel.h). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, VEER_ACCEL_SOCKETS);
	__type(key, struct veer_sock_pair);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct veer_accel);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_accel SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct veer_accel_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} veer_accel_stats SEC(".maps");

#endif /* VEER_BPF_MAPS_H */
