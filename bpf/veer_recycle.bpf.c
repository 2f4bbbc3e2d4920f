// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Socket recycling: iter/tcp and iter/udp programs that destroy the sockets of
 * the iterated network namespace whose peer is one of the targets in
 * veer_recycle_targets (Istio #13908: keep-alive clients that never re-balance;
 * Cilium #25169: UDP sockets stuck on a removed backend). The agent runs them
 * once per netns (an iterator sees the netns it was created in).
 *
 * bpf_sock_destroy is a kfunc of Linux >= 6.5; this object is separate from
 * veer_sock so that nothing else depends on it.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
/* From linux/socket.h (not a uapi header). */
#define AF_INET 2
#define AF_INET6 10
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "veer/maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The kernel types used, CO-RE relocated against the running kernel's BTF. */
struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct sock_common {
	__be32 skc_daddr;
	__be16 skc_dport;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct udp_sock;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

/* Weak: the object loads on kernels without it (the agent then uses netlink
 * SOCK_DESTROY), and the call below is dead code the verifier drops. */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VEER_RECYCLE_TARGETS);
	__type(key, struct veer_recycle_key);
	__type(value, struct veer_recycle);
} veer_recycle_targets SEC(".maps");

/* Sockets destroyed since load, by protocol (read by the agent). */
__u64 destroyed_tcp = 0;
__u64 destroyed_udp = 0;

static __always_inline int recycle(struct sock_common *sk, __u8 proto)
{
	struct veer_recycle_key key = {};
	const struct veer_recycle *target;
	__u64 cookie;

	if (!bpf_sock_destroy)
		return 0;
	key.proto = proto;
	key.port = sk->skc_dport;
	if (sk->skc_family == AF_INET) {
		key.addr[2] = bpf_htonl(0xffff);
		key.addr[3] = sk->skc_daddr;
	} else if (sk->skc_family == AF_INET6) {
		key.addr[0] = sk->skc_v6_daddr.in6_u.u6_addr32[0];
		key.addr[1] = sk->skc_v6_daddr.in6_u.u6_addr32[1];
		key.addr[2] = sk->skc_v6_daddr.in6_u.u6_addr32[2];
		key.addr[3] = sk->skc_v6_daddr.in6_u.u6_addr32[3];
	} else {
		return 0;
	}
	target = bpf_map_lookup_elem(&veer_recycle_targets, &key);
	if (!target)
		return 0;
	/* A fraction of the sockets: the same ones however often the agent runs
	 * (and the same ones the netlink path picks: see recyclePicks()). */
	cookie = bpf_get_socket_cookie(sk);
	if ((cookie * 0x9e3779b97f4a7c15ULL >> 32) % 1000 >= target->permille)
		return 0;
	if (bpf_sock_destroy(sk))
		return 0;
	if (proto == IPPROTO_TCP)
		__sync_fetch_and_add(&destroyed_tcp, 1);
	else
		__sync_fetch_and_add(&destroyed_udp, 1);
	return 0;
}

SEC("iter/tcp")
int veer_recycle_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *sk = ctx->sk_common;

	if (!sk)
		return 0;
	return recycle(sk, IPPROTO_TCP);
}

SEC("iter/udp")
int veer_recycle_udp(struct bpf_iter__udp *ctx)
{
	struct sock_common *sk = (struct sock_common *)ctx->udp_sk;

	if (!sk)
		return 0;
	return recycle(sk, IPPROTO_UDP);
}
